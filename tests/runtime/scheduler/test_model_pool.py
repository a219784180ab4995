from __future__ import annotations

from autoglm_cli.runtime.scheduler.model_pool import ModelPoolPolicy


def healthy(*models):
    return lambda model: model in models


def test_the_default_serves_while_it_is_healthy(clock):
    pool = ModelPoolPolicy("glm", "qwen", clock=clock)
    choice = pool.choose(None, healthy("glm", "qwen"))
    assert (choice.model, choice.fallback) == ("glm", False)
    assert pool.choose("glm", healthy("glm", "qwen")).model == "glm"
    assert pool.fallbacks == 0


def test_no_healthy_default_falls_back_to_the_backup(clock):
    pool = ModelPoolPolicy("glm", "qwen", clock=clock)
    choice = pool.choose(None, healthy("qwen"))
    assert (choice.model, choice.fallback, choice.reason) == ("qwen", True, "no healthy node")
    assert pool.fallbacks == 1


def test_a_request_for_another_model_is_never_redirected(clock):
    pool = ModelPoolPolicy("glm", "qwen", clock=clock)
    assert pool.choose("phone", healthy("qwen")).model == "phone"
    assert pool.after_failure("phone") is None


def test_without_a_healthy_backup_the_default_is_kept(clock):
    pool = ModelPoolPolicy("glm", "qwen", clock=clock)
    choice = pool.choose(None, healthy())
    assert (choice.model, choice.fallback) == ("glm", False)
    assert ModelPoolPolicy("glm", None, clock=clock).choose(None, healthy()).model == "glm"


def test_failures_after_retries_retry_on_the_backup_and_open_the_circuit(clock):
    pool = ModelPoolPolicy("glm", "qwen", failure_threshold=2, cooldown_s=30.0, clock=clock)
    both = healthy("glm", "qwen")
    retry = pool.after_failure("glm")
    assert retry is not None and (retry.model, retry.fallback) == ("qwen", True)
    assert not pool.circuit_open
    pool.after_failure("glm")
    assert pool.circuit_open
    assert pool.choose(None, both).reason == "circuit open"
    # After the cooldown exactly one request probes the default; the others keep falling back.
    clock.advance(31.0)
    assert pool.choose(None, both).model == "glm"
    assert pool.choose(None, both).model == "qwen"
    pool.record_success("glm")
    assert not pool.circuit_open
    assert pool.choose(None, both).model == "glm"


def test_a_failed_probe_reopens_the_circuit(clock):
    pool = ModelPoolPolicy("glm", "qwen", failure_threshold=1, cooldown_s=10.0, clock=clock)
    both = healthy("glm", "qwen")
    pool.after_failure("glm")
    clock.advance(11.0)
    assert pool.choose(None, both).model == "glm"  # the probe
    pool.after_failure("glm")
    assert pool.choose(None, both).model == "qwen"
    clock.advance(11.0)
    assert pool.choose(None, both).model == "glm"
