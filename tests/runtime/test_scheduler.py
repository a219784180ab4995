"""The static policy, the priority queue and the legacy-config adapter: pure, with a fake clock."""

from __future__ import annotations

import pytest

from autoglm_cli.config import parse_config
from autoglm_cli.runtime.scheduler import (
    Node,
    NodeState,
    NoNodeAvailable,
    Priority,
    PriorityQueue,
    QueueFull,
    Task,
    make_queue,
    make_scheduler,
)
from autoglm_cli.runtime.scheduler.static import StaticScheduler

from .scheduler.conftest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def node(node_id: str, model: str = "glm", state: NodeState = NodeState.READY, capacity: int = 1) -> Node:
    return Node(id=node_id, models=frozenset({model}), state=state, capacity=capacity)


def task(task_id: str, model: str = "glm", priority: Priority = Priority.NORMAL) -> Task:
    return Task(id=task_id, model=model, priority=priority)


def test_static_routes_round_robin_over_ready_nodes():
    scheduler = StaticScheduler(3)
    for n in (node("a"), node("b"), node("c", state=NodeState.STARTING), node("d", model="qwen")):
        scheduler.on_node_change(n)
    assert [scheduler.route_task(task(str(i))).id for i in range(4)] == ["a", "b", "a", "b"]
    assert scheduler.route_task(task("q", model="qwen")).id == "d"


def test_static_skips_busy_nodes_while_an_idle_one_exists():
    scheduler = StaticScheduler(2)
    a, b = node("a"), node("b")
    for n in (a, b):
        scheduler.on_node_change(n)
    a.running = 1  # the runtime counts running requests on the shared Node objects
    assert [scheduler.route_task(task(str(i))).id for i in range(3)] == ["b", "b", "b"]
    b.running = 1
    assert scheduler.route_task(task("x")).id in ("a", "b")  # all busy: still an answer


def test_static_raises_when_no_node_serves_the_model():
    scheduler = StaticScheduler(1)
    scheduler.on_node_change(node("a", state=NodeState.FAILED))
    with pytest.raises(NoNodeAvailable) as exc:
        scheduler.route_task(task("t"))
    assert exc.value.model == "glm"
    scheduler.on_node_removed(node("a"))
    assert scheduler.nodes == {}


def test_static_keeps_a_fixed_pool_whatever_the_load():
    scheduler = StaticScheduler(4)
    assert scheduler.adjust_workers(0.0) == 4 and scheduler.adjust_workers(1000.0) == 4


def test_base_tracks_arrival_rate_and_service_time():
    now = [0.0]
    scheduler = StaticScheduler(1, clock=lambda: now[0])
    for i in range(20):
        now[0] = i * 0.5
        scheduler.on_arrival(task(str(i)))
    assert scheduler.predict_load() == pytest.approx(2.0)  # 20 arrivals within the 10 s window
    now[0] = 100.0
    assert scheduler.predict_load() == 0.0
    n = node("a")
    scheduler.on_completion(task("x"), n, 1.0, True)
    scheduler.on_completion(task("y"), n, 2.0, True)
    scheduler.on_completion(task("z"), n, 50.0, False)  # failures do not count as service time
    assert n.service_time_ewma == pytest.approx(1.2)


def test_queue_serves_high_before_normal_before_low_fifo_within():
    queue = PriorityQueue()
    for t in (
        task("l1", priority=Priority.LOW),
        task("n1"),
        task("h1", priority=Priority.HIGH),
        task("n2"),
        task("h2", priority=Priority.HIGH),
    ):
        queue.push(t)
    assert queue.depth() == {Priority.HIGH: 2, Priority.NORMAL: 2, Priority.LOW: 1}
    assert [queue.pop().id for _ in range(5)] == ["h1", "h2", "n1", "n2", "l1"]
    assert queue.pop() is None


def test_queue_pop_skips_ineligible_tasks_and_retries_go_first():
    queue = PriorityQueue()
    for t in (task("a", model="busy"), task("b"), task("c")):
        queue.push(t)
    assert queue.pop(lambda t: t.model != "busy").id == "b"
    queue.push(task("retry"), front=True)
    assert [queue.pop().id for _ in range(3)] == ["retry", "a", "c"]


def test_queue_remove_and_limit():
    queue = PriorityQueue(max_size=2)
    queue.push(task("a"))
    queue.push(task("b"))
    with pytest.raises(QueueFull):
        queue.push(task("c"))
    queue.push(task("retry"), front=True)  # a retry is never refused
    assert queue.remove("a").id == "a" and queue.remove("a") is None
    assert "b" in queue and len(queue) == 2
    with pytest.raises(ValueError):
        queue.push(task("b"))


def test_the_old_priority_based_name_selects_the_dynamic_scheduler_with_an_aging_queue(clock):
    from autoglm_cli.runtime.scheduler import make_queue
    from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler

    config = parse_config("scheduler: priority-based\nworkers: {min: 1, max: 6}", environ={})
    warnings: list[str] = []
    scheduler = make_scheduler(config, clock=clock, warn=warnings.append)
    assert isinstance(scheduler, DynamicScheduler) and scheduler.settings.priorities
    assert (scheduler.settings.min_workers, scheduler.settings.max_workers) == (1, 6) and warnings == []
    queue = make_queue(config, clock=clock)
    assert queue.aging_s == 10.0 and queue.priorities
    queue.push(Task(id="old-low", model="m", priority=Priority.LOW, arrived_at=clock()))
    clock.advance(25.0)
    queue.push(Task(id="new-high", model="m", priority=Priority.HIGH, arrived_at=clock()))
    assert queue.pop().id == "old-low"  # aged past a fresh high task


def test_static_keeps_strict_priorities_and_dynamic_is_fifo(clock):
    from autoglm_cli.runtime.scheduler import make_queue

    quiet: list[str] = []
    static = parse_config("scheduler: static\nworkers: {min: 2}", environ={})
    plain = make_scheduler(static, warn=quiet.append)
    assert isinstance(plain, StaticScheduler) and plain.workers == 2 and quiet == []
    assert make_queue(static).aging_s is None and make_queue(static).priorities
    dynamic = make_queue(parse_config("scheduler: dynamic", environ={}))
    dynamic.push(task("low", priority=Priority.LOW))
    dynamic.push(task("high", priority=Priority.HIGH))
    assert dynamic.pop().id == "low"


def test_a_fixed_count_pins_the_dynamic_pool_and_warns():
    warnings: list[str] = []
    scheduler = make_scheduler(
        parse_config("scheduler: dynamic\nworkers: {count: 3}", environ={}), warn=warnings.append
    )
    assert (scheduler.settings.min_workers, scheduler.settings.max_workers) == (3, 3)
    assert len(warnings) == 1 and "workers.count" in warnings[0]


def test_make_scheduler_picks_the_dynamic_policy_by_name():
    from autoglm_cli.runtime.scheduler.dynamic import DynamicScheduler

    scheduler = make_scheduler(parse_config("scheduler: dynamic\nworkers: {min: 2, max: 6}", environ={}))
    assert isinstance(scheduler, DynamicScheduler)
    assert scheduler.adjust_workers(0.0) == 2  # within workers.min..max


def test_make_queue_uses_gateway_max_queue():
    assert make_queue(parse_config("gateway: {max_queue: 7}", environ={})).max_size == 7
