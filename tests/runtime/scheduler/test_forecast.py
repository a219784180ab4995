from __future__ import annotations

import math

import pytest

from autoglm_cli.runtime.scheduler.forecast import (
    ArrivalCounter,
    Ewma,
    Holt,
    LastValue,
    evaluate,
    make_forecaster,
    rates_per_interval,
)


def test_last_value_repeats_the_last_observation():
    f = LastValue()
    for v in (3.0, 5.0, 2.0):
        f.update(v)
    assert f.forecast() == 2.0


def test_ewma_smooths_towards_the_new_level():
    f = Ewma(alpha=0.5)
    f.update(0.0)
    f.update(8.0)
    assert f.forecast() == 4.0
    f.update(8.0)
    assert f.forecast() == 6.0


def test_holt_extrapolates_a_ramp_that_ewma_lags():
    ramp = [float(i) for i in range(40)]
    holt, ewma = Holt(alpha=0.8, beta=0.5, phi=1.0), Ewma(alpha=0.8)
    for v in ramp:
        holt.update(v)
        ewma.update(v)
    assert holt.forecast(1) == pytest.approx(40.0, abs=0.01)
    assert ewma.forecast(1) < 39.0
    assert (
        evaluate(ramp, Holt(alpha=0.8, beta=0.5, phi=1.0), warmup=10).mae
        < evaluate(ramp, Ewma(0.8), warmup=10).mae
    )


def test_damped_trend_flattens_far_forecasts():
    holt = Holt(alpha=1.0, beta=1.0, phi=0.5)
    for v in (0.0, 10.0):
        holt.update(v)
    # trend 10, damped: 10 + 10 * (0.5 + 0.25 + ...) stays below 20.
    assert 10.0 < holt.forecast(50) < 20.0


def test_forecasts_never_go_negative():
    holt = Holt(alpha=0.9, beta=0.9, phi=1.0)
    for v in (10.0, 5.0, 0.0):
        holt.update(v)
    assert holt.forecast(3) == 0.0


@pytest.mark.parametrize("kind", ["last-value", "ewma", "holt"])
def test_make_forecaster_by_name(kind):
    assert make_forecaster(kind).name == kind


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Ewma(alpha=0)
    with pytest.raises(ValueError):
        Holt(beta=1.5)
    with pytest.raises(ValueError, match="unknown forecaster"):
        make_forecaster("prophet")


def test_evaluate_scores_one_step_ahead_errors():
    # Last value on 1, 3, 3, 7: forecasts 1, 3, 3 for actuals 3, 3, 7 -> errors -2, 0, -4.
    err = evaluate([1.0, 3.0, 3.0, 7.0], LastValue())
    assert err.points == 3
    assert err.mae == pytest.approx(2.0)
    assert err.bias == pytest.approx(-2.0)
    assert err.under == pytest.approx(2.0)
    assert err.rmse == pytest.approx(math.sqrt((4 + 0 + 16) / 3))


def test_rates_per_interval_counts_empty_intervals():
    assert rates_per_interval([0.1, 0.2, 2.5], 1.0, end=4.0) == [2.0, 0.0, 1.0, 0.0]
    assert rates_per_interval([0.1, 0.2, 2.5], 2.0) == [1.0, 0.5]


def test_arrival_counter_closes_intervals_with_their_rates(clock):
    counter = ArrivalCounter(1.0, clock=clock)
    counter.add(3)
    clock.advance(2.5)  # one interval with 3, one empty, one open
    counter.add(1)
    assert counter.close() == [3.0, 0.0]
    assert counter.close() == []
    clock.advance(1.0)
    assert counter.close() == [1.0]


def test_arrival_counter_recent_rate_widens_to_enough_arrivals(clock):
    counter = ArrivalCounter(1.0, window_s=30.0, clock=clock)
    for _ in range(10):
        counter.add()
        clock.advance(2.0)  # 0.5 arrivals per second
    # A 3 s window holds one arrival (an estimate of 0.33/s); 10 arrivals span 20 s.
    assert counter.rate(3.0) == pytest.approx(1 / 3)
    assert counter.rate(3.0, min_events=10) == pytest.approx(0.5)
