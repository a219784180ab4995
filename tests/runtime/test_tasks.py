"""BackgroundTasks: holds fire-and-forget tasks until done; close cancels and awaits the rest."""

from __future__ import annotations

import asyncio

from autoglm_cli.runtime.tasks import BackgroundTasks


def test_a_finished_task_is_let_go_and_close_cancels_the_running_ones_and_what_they_spawn():
    async def scenario():
        tasks = BackgroundTasks()
        quick = tasks.spawn(asyncio.sleep(0), name="quick")
        await quick
        assert len(tasks) == 0  # done: no longer held
        ended: list[str] = []

        async def forever(name: str, then=None):
            try:
                await asyncio.Event().wait()
            finally:
                ended.append(name)
                if then is not None:  # like a failed node whose handle is closed in the background
                    tasks.spawn(forever(then), name=then)

        tasks.spawn(forever("a", then="spawned-while-closing"), name="a")
        tasks.spawn(forever("b"), name="b")
        await asyncio.sleep(0)
        assert len(tasks) == 2
        await tasks.close()
        return ended, len(tasks), tasks.closed

    ended, left, closed = asyncio.run(scenario())
    assert sorted(ended) == ["a", "b", "spawned-while-closing"]
    assert left == 0 and closed
