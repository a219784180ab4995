"""A Dask preload for worker processes that a nanny starts: Ctrl-C is the parent's to handle.

A terminal's Ctrl-C reaches the whole process group. Left alone, every worker
process dies of its own KeyboardInterrupt (a traceback each) while the parent is
still draining requests on them; ignoring SIGINT there lets the parent close them
in order (`serve`'s LocalCluster, and `autoglm worker`'s nannies).
"""

from __future__ import annotations

import multiprocessing
import signal


def ignore_interrupts() -> None:
    """In a process a nanny spawned (never in a parent that handles Ctrl-C itself)."""
    if multiprocessing.parent_process() is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


async def dask_setup(worker) -> None:
    """Dask's preload hook (runs on the worker's loop, in the main thread)."""
    ignore_interrupts()
