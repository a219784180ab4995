"""Fixtures for deploy tests: a real Docker engine (or a clear skip), free ports."""

from __future__ import annotations

import os
import socket

import pytest

BASE_IMAGE_ENV = "AUTOGLM_BASE_IMAGE"
DEFAULT_BASE_IMAGE = "autoglm-base:test"


@pytest.fixture(scope="session")
def docker_engine():
    """(client, base image) for a real engine; skips, saying why, where none can be used."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:  # pragma: no cover - docker is a core dependency
        pytest.skip("the docker SDK is not installed")
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        pytest.skip(
            f"no Docker engine answers ({str(exc)[:120]}); as root, .ci/setup-system installs and starts one"
        )
    base = os.environ.get(BASE_IMAGE_ENV, DEFAULT_BASE_IMAGE)
    try:
        client.images.get(base)
    except ImageNotFound:
        pytest.skip(
            f"base image {base} is missing; .ci/setup-system builds it with debootstrap (no registry here)"
        )
    return client, base


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
