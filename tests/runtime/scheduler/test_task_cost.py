from __future__ import annotations

import random

import pytest

from autoglm_cli.runtime.scheduler.base import Task
from autoglm_cli.runtime.scheduler.task_cost import TaskCostModel


def task(prompt: int, max_tokens: int) -> Task:
    return Task(id="t", model="m", prompt_tokens=prompt, max_tokens=max_tokens)


def linear_cost(prompt: int, max_tokens: int) -> float:
    """The simulated backend's law: fixed + prefill per prompt token + decode per output token."""
    return 0.05 + 0.0001 * prompt + 0.02 * max_tokens


def test_no_estimate_until_enough_completions():
    # A line through the first two points would charge seconds per token.
    model = TaskCostModel()
    for n in range(19):
        model.observe(task(0, 1 + n), linear_cost(0, 1 + n))
    assert not model.ready and model.estimate(task(10, 10)) is None
    model.observe(task(0, 30), linear_cost(0, 30))
    assert model.ready and model.estimate(task(10, 10)) == pytest.approx(linear_cost(10, 10), rel=0.01)


def trained(count: int, max_prompt: int, max_out: int, seed: int) -> TaskCostModel:
    """A model that saw `count` answers of random sizes, timed by `linear_cost`."""
    rng = random.Random(seed)
    model = TaskCostModel()
    for _ in range(count):
        prompt, out = rng.randint(0, max_prompt), rng.randint(1, max_out)
        model.observe(task(prompt, out), linear_cost(prompt, out))
    return model


def test_learns_the_cost_of_prompt_and_output_tokens():
    model = trained(300, 4000, 500, seed=1)
    # A combination never seen: the fit generalises, and knows it is accurate.
    assert model.estimate(task(2500, 1200)) == pytest.approx(linear_cost(2500, 1200), rel=0.01)
    assert model.estimate(task(0, 1)) == pytest.approx(linear_cost(0, 1), rel=0.05)
    assert model.relative_error < 0.05


def test_an_uninformative_max_tokens_leaves_the_mean_and_a_large_error():
    # Every client sends max_tokens 4096 and stops at end of text: lengths are heavy-tailed
    # and nothing in the request predicts them.
    rng = random.Random(2)
    model = TaskCostModel()
    seconds = [0.05 + 0.02 * int(rng.paretovariate(1.5) * 10) for _ in range(2000)]
    for s in seconds:
        model.observe(task(100, 4096), s)
    recent = seconds[-500:]
    estimate = model.estimate(task(100, 4096))
    assert estimate == pytest.approx(sum(recent) / len(recent), rel=0.35)
    # A request unlike any seen does not get a wild extrapolation from a constant column.
    assert model.estimate(task(100, 16)) == pytest.approx(estimate, rel=0.1)
    assert model.relative_error > 0.4


def test_follows_a_change_of_hardware():
    model = TaskCostModel(memory=100)
    for _ in range(300):
        model.observe(task(0, 100), 2.0)
    for _ in range(600):  # six memories: what is left of the old hardware weighs e^-6
        model.observe(task(0, 100), 1.0)  # the model moved to faster GPUs
    assert model.estimate(task(0, 100)) == pytest.approx(1.0, rel=0.02)


def test_settings_are_validated():
    with pytest.raises(ValueError):
        TaskCostModel(memory=0)
    with pytest.raises(ValueError):
        TaskCostModel(ridge=0)


def test_nodes_of_different_speeds_do_not_count_as_poor_estimates():
    rng = random.Random(3)
    model = TaskCostModel()
    for i in range(400):
        out = rng.randint(1, 500)
        speed = 2.0 if i % 2 else 1.0  # half the completions come from a node twice as slow
        model.observe(task(0, out), speed * linear_cost(0, out), speed=speed / 1.5)
    assert model.estimate(task(0, 100)) == pytest.approx(1.5 * linear_cost(0, 100), rel=0.05)
    assert model.relative_error < 0.05


def test_a_few_instant_refusals_do_not_make_long_prompts_free():
    model = trained(200, 2000, 300, seed=4)
    for _ in range(3):  # refused in 2 ms: long prompts, large bounds
        model.observe(task(30000, 4096), 0.002)
    assert model.estimate(task(10000, 100)) >= linear_cost(0, 100)  # never below the output's own cost
    assert model.estimate(task(0, 1)) >= 0.01 * linear_cost(1000, 150)  # nor below 1% of the mean


def test_requests_without_max_tokens_get_their_own_estimate():
    # Half the clients send no bound and get the backend's default of 256 tokens.
    rng = random.Random(5)
    model = TaskCostModel()
    for i in range(400):
        out = rng.randint(1, 300)
        if i % 2:
            model.observe(task(100, out), linear_cost(100, out))
        else:
            model.observe(task(100, 0), linear_cost(100, 256))
    assert model.estimate(task(100, 0)) == pytest.approx(linear_cost(100, 256), rel=0.02)
    assert model.estimate(task(100, 50)) == pytest.approx(linear_cost(100, 50), rel=0.02)
