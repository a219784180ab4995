from __future__ import annotations

import pytest

from autoglm_cli.runtime.scheduler.aging import AgingPriorityQueue
from autoglm_cli.runtime.scheduler.base import Priority


def test_fresh_tasks_leave_by_priority_then_arrival(clock):
    q = AgingPriorityQueue(aging_s=10.0, clock=clock)
    q.push("low", Priority.LOW)
    q.push("normal-1", Priority.NORMAL)
    q.push("high", Priority.HIGH)
    q.push("normal-2", Priority.NORMAL)
    assert [q.pop() for _ in range(4)] == ["high", "normal-1", "normal-2", "low"]


def test_a_waiting_low_task_overtakes_fresh_high_ones(clock):
    q = AgingPriorityQueue(aging_s=10.0, clock=clock)
    q.push("old-low", Priority.LOW)
    clock.advance(19.0)
    q.push("new-high", Priority.HIGH)
    assert q.peek() == "new-high"  # 19 s of aging: rank 2 - 1.9 = 0.1 > 0
    clock.advance(2.0)
    q.push("newer-high", Priority.HIGH)
    # 21 s: old-low ranks -0.1, behind new-high (-0.2) but ahead of the high task that just came.
    assert [q.pop() for _ in range(3)] == ["new-high", "old-low", "newer-high"]


def test_low_priority_never_starves_under_a_stream_of_high_tasks(clock):
    q = AgingPriorityQueue(aging_s=5.0, clock=clock)
    q.push("low", Priority.LOW)
    served_at = None
    for i in range(1000):  # one high arrival and one service per second: always something high waiting
        q.push(f"high-{i}", Priority.HIGH)
        clock.advance(1.0)
        if q.pop() == "low":
            served_at = i
            break
    assert served_at is not None
    assert served_at <= 2 * 5.0 + 1


def test_without_priorities_the_queue_is_fifo(clock):
    q = AgingPriorityQueue(priorities=False, clock=clock)
    q.push("a", Priority.LOW)
    q.push("b", Priority.HIGH)
    assert [q.pop(), q.pop()] == ["a", "b"]
    assert q.depth()[Priority.HIGH] == 0


def test_cancel_by_key_and_depth_per_priority(clock):
    q = AgingPriorityQueue(clock=clock)
    q.push("a", Priority.HIGH, key="task-a")
    q.push("b", Priority.LOW, key="task-b")
    q.push("c", Priority.LOW, key="task-c")
    assert q.depth() == {Priority.HIGH: 1, Priority.NORMAL: 0, Priority.LOW: 2}
    assert q.remove("task-a") is True
    assert q.remove("task-a") is False
    assert len(q) == 2 and q.depth()[Priority.HIGH] == 0
    clock.advance(3.0)
    assert q.waited_s("task-b") == pytest.approx(3.0)
    assert q.pop() == "b"
    assert q.waited_s("task-b") is None


def test_duplicate_keys_and_empty_pops_are_errors(clock):
    q = AgingPriorityQueue(clock=clock)
    q.push("a", key="k")
    with pytest.raises(KeyError):
        q.push("b", key="k")
    q.pop()
    with pytest.raises(IndexError):
        q.pop()
