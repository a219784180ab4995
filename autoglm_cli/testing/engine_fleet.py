"""Fake engines as real processes behind one `autoglm serve` model, for the end-to-end
scheduler test and benchmark: start them, wait until they answer, read their counters."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .servers import free_port, wait_http

ENGINE_MODULE = "autoglm_cli.testing.fake_engine"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)", re.M)


class FakeEngines:
    """`count` processes of `python -m autoglm_cli.testing.fake_engine ARGS`; a context manager
    that returns once every one answers `/health` (logs in `log_dir`, else discarded)."""

    def __init__(self, count: int, args: list[str], log_dir: Path | None = None) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.args, self.log_dir = args, log_dir
        self.procs: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def __enter__(self) -> FakeEngines:
        try:
            for port in self.ports:
                out = subprocess.DEVNULL
                if self.log_dir is not None:
                    out = open(self.log_dir / f"engine-{port}.log", "wb")  # noqa: SIM115 - the child holds it
                cmd = [
                    sys.executable,
                    "-m",
                    "autoglm_cli.testing.fake_engine",
                    "--port",
                    str(port),
                    *self.args,
                ]
                self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))
            for url, proc in zip(self.urls, self.procs, strict=True):
                wait_http(f"{url}/health", timeout=60, alive=lambda p=proc: p.poll() is None)
        except BaseException:
            self.__exit__()
            raise
        return self

    def sums(self, names: tuple[str, ...]) -> dict[str, float]:
        """Each metric in `names` summed over the engines and their label sets."""
        import httpx

        total = dict.fromkeys(names, 0.0)
        for url in self.urls:
            for name, value in _SAMPLE.findall(httpx.get(f"{url}/metrics", timeout=10).text):
                if name in total:
                    total[name] += float(value)
        return total

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def serve_config(urls: list[str], policy: str, **sections) -> dict:
    """`autoglm serve`'s config with the engines as the endpoints of one model, `fake`, routed
    by `policy`; `sections` add to or replace the top-level ones."""
    return {
        "model_pool": {"default": "fake", "backup": None},
        "models": {
            "fake": {
                "backend": "openai",
                "source": f"{urls[0]}/v1",
                "options": {"model": "fake-model", "endpoints": [f"{u}/v1" for u in urls]},
            }
        },
        "scheduler": policy,
        "workers": {"count": len(urls)},
        "gateway": {"auth": False},
        **sections,
    }
