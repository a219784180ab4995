"""The gateway queue's aging (scheduler: priority-based) and FIFO (scheduler: dynamic) modes."""

from __future__ import annotations

from autoglm_cli.runtime.scheduler.base import Priority, Task
from autoglm_cli.runtime.scheduler.queue import PriorityQueue


def push(q: PriorityQueue, clock, name: str, priority: Priority = Priority.NORMAL) -> None:
    q.push(Task(id=name, model="m", priority=priority, arrived_at=clock()))


def pop_names(q: PriorityQueue, n: int) -> list[str]:
    return [q.pop().id for _ in range(n)]


def test_fresh_tasks_leave_by_priority_then_arrival(clock):
    q = PriorityQueue(aging_s=10.0, clock=clock)
    for name, p in [
        ("low", Priority.LOW),
        ("normal-1", Priority.NORMAL),
        ("high", Priority.HIGH),
        ("normal-2", Priority.NORMAL),
    ]:
        push(q, clock, name, p)
    assert pop_names(q, 4) == ["high", "normal-1", "normal-2", "low"]


def test_a_waiting_low_task_overtakes_fresh_high_ones(clock):
    q = PriorityQueue(aging_s=10.0, clock=clock)
    push(q, clock, "old-low", Priority.LOW)
    clock.advance(19.0)
    push(q, clock, "new-high", Priority.HIGH)
    assert q.peek().id == "new-high"  # 19 s of aging: rank 2 - 1.9 = 0.1 > 0
    clock.advance(2.0)
    push(q, clock, "newer-high", Priority.HIGH)
    # 21 s: old-low ranks -0.1, behind new-high (-0.2) but ahead of the high task that just came.
    assert pop_names(q, 3) == ["new-high", "old-low", "newer-high"]


def test_low_priority_never_starves_under_a_stream_of_high_tasks(clock):
    q = PriorityQueue(aging_s=5.0, clock=clock)
    push(q, clock, "low", Priority.LOW)
    served_at = None
    for i in range(1000):  # one high arrival and one service per second: always something high waiting
        push(q, clock, f"high-{i}", Priority.HIGH)
        clock.advance(1.0)
        if q.pop().id == "low":
            served_at = i
            break
    assert served_at is not None and served_at <= 2 * 5.0 + 1


def test_strict_priorities_starve_low_without_aging(clock):
    q = PriorityQueue(clock=clock)  # the static scheduler's queue
    push(q, clock, "low", Priority.LOW)
    for i in range(50):
        push(q, clock, f"high-{i}", Priority.HIGH)
        clock.advance(1.0)
        assert q.pop().id == f"high-{i}"


def test_eligibility_skips_tasks_in_aged_order(clock):
    q = PriorityQueue(aging_s=1.0, clock=clock)
    push(q, clock, "old-low", Priority.LOW)
    clock.advance(5.0)
    push(q, clock, "high", Priority.HIGH)
    assert q.pop(lambda t: t.id != "old-low").id == "high"
    assert q.pop().id == "old-low" and q.pop() is None


def test_without_priorities_the_queue_is_fifo(clock):
    q = PriorityQueue(priorities=False, aging_s=10.0, clock=clock)
    push(q, clock, "a", Priority.LOW)
    push(q, clock, "b", Priority.HIGH)
    assert pop_names(q, 2) == ["a", "b"]
    assert q.depth()[Priority.HIGH] == 0


def test_cancel_and_depth_per_priority(clock):
    q = PriorityQueue(aging_s=10.0, clock=clock)
    push(q, clock, "a", Priority.HIGH)
    push(q, clock, "b", Priority.LOW)
    push(q, clock, "c", Priority.LOW)
    assert q.depth() == {Priority.HIGH: 1, Priority.NORMAL: 0, Priority.LOW: 2}
    assert q.remove("a") is not None and q.remove("a") is None
    assert len(q) == 2 and q.depth()[Priority.HIGH] == 0
    clock.advance(3.0)
    assert q.waited_s("b") == 3.0
    assert q.pop().id == "b" and q.waited_s("b") is None
