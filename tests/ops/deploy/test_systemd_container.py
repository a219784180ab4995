"""The rendered unit under a real systemd: PID 1 of a privileged container on the test engine.

`autoglm deploy --target systemd --install` inside the container (the project's image
plus Debian's systemd): the unit is `activating` while the model loads and `active`
only once `/readyz` passes; killed, systemd restarts it; stopped, it ends cleanly.
Where the engine cannot run systemd as PID 1 (no privileged containers, no cgroup
access, no Debian mirror for the systemd package), the test skips with the reason.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

UNIT = "glm-sd.service"
CONFIG = """\
model_pool: {default: sim-glm}
scheduler: static
models:
  sim-glm: {backend: simulated, options: {a: 0.005, c: 0.001, output_tokens: 5, load_seconds: 8}}
workers: {engine: dask, count: 1}
gateway: {host: 127.0.0.1, port: 8000, keys_file: /etc/autoglm-test/keys.json}
weights: {cache_dir: /var/cache/autoglm-test/hub}
deploy: {name: glm-sd, state_dir: /var/lib/autoglm-deploy, health_timeout: 120s}
"""
READYZ = (
    "import sys, urllib.request\n"
    "try:\n"
    "    answer = urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)\n"
    "    sys.exit(0 if answer.status == 200 else 1)\n"
    "except Exception:\n"
    "    sys.exit(1)\n"
)


SYSTEMD_CAPS = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "NET_BIND_SERVICE", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_CHROOT",
    "SYS_PTRACE", "SYS_ADMIN", "SYS_NICE", "MKNOD", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
]  # fmt: skip


def _systemd_image(client, base_tag: str) -> str:
    tag = f"autoglm-systemd:{base_tag.split(':', 1)[1]}"
    with contextlib.suppress(Exception):
        client.images.get(tag)
        return tag
    dockerfile = (
        f"FROM {base_tag}\nUSER root\n"
        "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends systemd systemd-sysv dbus >/dev/null && rm -rf /var/lib/apt/lists/*\n"
        "RUN mkdir -p /etc/autoglm-test /var/cache/autoglm-test/hub\n"
        'ENTRYPOINT ["/lib/systemd/systemd"]\n'
    )
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, network_mode="host", rm=True)
    except Exception as exc:  # noqa: BLE001 - any reason is a reason to skip, said
        pytest.skip(f"cannot build an image with systemd here: {str(exc)[:300]}")
    return tag


def _sh(container, command: str) -> tuple[int, str]:
    code, output = container.exec_run(["sh", "-c", command])
    return code, output.decode("utf-8", "replace")


@pytest.fixture
def systemd_container(docker_engine, tmp_path):
    from autoglm_cli.config import parse_config
    from autoglm_cli.ops.deploy.docker_target import build_image

    client, base = docker_engine
    config = parse_config(
        f"deploy: {{state_dir: {tmp_path / 'state'}, docker: {{base_image: '{base}', gpus: none}}}}\n",
        environ={},
    )
    image = _systemd_image(client, build_image(config))
    name = f"autoglm-systemd-{uuid.uuid4().hex[:8]}"
    common = dict(
        name=name,
        detach=True,
        network_mode="none",  # its own loopback: everything is checked from inside
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
        cgroupns="host",
    )
    container = None
    try:
        try:
            container = client.containers.run(image, privileged=True, **common)
        except Exception as exc:  # noqa: BLE001
            # An engine that itself runs without some capability (here: CAP_SYS_RESOURCE) cannot
            # grant them all; the ones systemd needs are enough.
            with contextlib.suppress(Exception):
                client.containers.get(name).remove(force=True)
            privileged_error = str(exc)[:300]
            try:
                container = client.containers.run(
                    image,
                    cap_add=SYSTEMD_CAPS,
                    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
                    **common,
                )
            except Exception as again:  # noqa: BLE001
                pytest.skip(
                    f"the engine cannot run systemd in a container: privileged: {privileged_error}; "
                    f"with capabilities: {str(again)[:300]}"
                )
        state = ""
        for _ in range(120):
            container.reload()
            if container.status != "running":
                break
            _, state = _sh(container, "systemctl is-system-running 2>&1")
            if state.strip() in ("running", "degraded"):
                break
            time.sleep(0.5)
        if state.strip() not in ("running", "degraded"):
            logs = container.logs(tail=15).decode("utf-8", "replace")
            pytest.skip(f"systemd did not come up as PID 1 on this engine ({state.strip()!r}): {logs[-600:]}")
        # The unit passes its config and keys as credentials (LoadCredential=). Seen on this
        # engine: systemd mounts the credentials' ramfs in a child namespace, and with the
        # container's private mount propagation the service gets the empty root-only folder.
        probe = (
            "systemd-run --wait --pipe -p DynamicUser=yes -p LoadCredential=x:/etc/hostname "
            "sh -c 'cat $CREDENTIALS_DIRECTORY/x' 2>&1"
        )
        code, out = _sh(container, probe)
        if code != 0:
            pytest.skip(f"this engine's systemd cannot pass credentials to a service: {out.strip()[-300:]}")
        yield container
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                container.remove(force=True)


def test_the_unit_is_active_only_when_ready_restarted_when_killed_and_stops_cleanly(systemd_container):
    container = systemd_container
    code, out = _sh(container, f"cat > /etc/autoglm-test/config.yaml <<'EOF'\n{CONFIG}EOF")
    assert code == 0, out
    install = ["autoglm", "deploy", "--target", "systemd", "--install"]
    container.exec_run([*install, "--config", "/etc/autoglm-test/config.yaml"], detach=True)
    seen = []
    for _ in range(400):
        _, active = _sh(container, f"systemctl is-active {UNIT}")
        ready, _ = container.exec_run(["/opt/autoglm/bin/python", "-c", READYZ])
        seen.append((active.strip(), ready == 0))
        if active.strip() == "active":
            break
        time.sleep(0.25)
    states = {s for s, _ in seen}
    assert "activating" in states, seen[-10:]  # started, loading, not yet "active"
    assert seen[-1] == ("active", True), seen[-10:]
    assert not any(s == "active" and not r for s, r in seen)  # never active before /readyz passed
    _, props = _sh(container, f"systemctl show -p Type -p NRestarts -p WatchdogUSec -p User {UNIT}")
    assert "Type=notify" in props and "NRestarts=0" in props, props

    _sh(container, f"systemctl kill -s SIGKILL {UNIT}")
    for _ in range(240):
        _, props = _sh(container, f"systemctl show -p NRestarts -p ActiveState {UNIT}")
        if "NRestarts=1" in props and "ActiveState=active" in props:
            break
        time.sleep(0.5)
    assert "NRestarts=1" in props and "ActiveState=active" in props, props

    code, out = _sh(container, f"systemctl stop {UNIT}; systemctl show -p ActiveState -p Result {UNIT}")
    assert "ActiveState=inactive" in out and "Result=success" in out, out
    _, journal = _sh(container, f"journalctl -u {UNIT} --no-pager -n 200")
    assert "serving on" in journal or "glm-sd" in journal
