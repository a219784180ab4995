"""The scale hook: when `serve` does not own the cluster (`--dask-scheduler`), the desired
worker count goes to a command the operator configures (`workers.scale_hook`), e.g.
`kubectl scale deploy/autoglm-worker --replicas={n}`.

Never through a shell: the template is split once with `shlex` and `{n}` is replaced
inside the arguments, so nothing in it is interpreted twice. Each run has a timeout;
a failed or slow hook is logged and the next change runs it again.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from dataclasses import dataclass

from ..errors import ConfigError
from ..redact import redact

log = logging.getLogger("autoglm.scale")


@dataclass(frozen=True)
class ScaleHook:
    argv: tuple[str, ...]  # the template, split; "{n}" stands for the count
    timeout: float

    @classmethod
    def parse(cls, template: str, timeout: float, *, source: str | None = None) -> ScaleHook:
        try:
            argv = tuple(shlex.split(template))
        except ValueError as exc:
            raise ConfigError(
                f"workers.scale_hook is not a valid command line: {exc}",
                file=source,
                field="workers.scale_hook",
            ) from None
        if not argv:
            raise ConfigError("workers.scale_hook is empty", file=source, field="workers.scale_hook")
        if not any("{n}" in arg for arg in argv):
            raise ConfigError(
                "workers.scale_hook never uses {n}, the desired worker count",
                file=source,
                field="workers.scale_hook",
                remedy='Write it like "kubectl scale deploy/autoglm-worker --replicas={n}".',
            )
        return cls(argv, timeout)

    def command(self, n: int) -> list[str]:
        return [arg.replace("{n}", str(int(n))) for arg in self.argv]

    async def run(self, n: int) -> int | None:
        """Run the hook for `n` workers; its exit code, or None when it could not run or timed out."""
        argv = self.command(n)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.error("scale hook %s could not start: %s", redact(argv[0]), redact(str(exc)))
            return None
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), self.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            log.error("scale hook for %d workers timed out after %g s and was killed", n, self.timeout)
            return None
        except asyncio.CancelledError:  # the gateway stops: end the hook too, and reap it
            if proc.returncode is None:
                proc.kill()
            await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-500:]
            log.error("scale hook for %d workers exited %d: %s", n, proc.returncode, redact(tail))
        else:
            log.info("scale hook ran for %d workers", n)
        return proc.returncode
