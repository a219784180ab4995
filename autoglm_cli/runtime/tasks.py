"""The runtime's background asyncio tasks: one owner keeps them referenced and ends them.

asyncio keeps only weak references to tasks, so a fire-and-forget task (a node's probe,
a job on its node, a cancel the gateway asks for) must be held somewhere until it is
done; and on shutdown every one of them must be cancelled and awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """Holds running tasks until they finish; `close` cancels and awaits the rest."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task:
        """Run `coro` in the background (on the running loop) and keep it until it is done."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task still running and wait for them all to end."""
        self.closed = True
        while self._tasks:  # a task ending may spawn another (a close after a failure)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
