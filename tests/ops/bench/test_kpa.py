"""Knative's KPA, the reactive anchor: stable-window sizing, panic at 2x, no scale-down in panic."""

from __future__ import annotations

from autoglm_cli.ops.bench.kpa import KnativeScaler


def test_the_stable_window_sizes_for_mean_concurrency():
    kpa = KnativeScaler(8.0, max_nodes=10)
    for t in range(60):
        desired = kpa.observe(float(t), 24.0, ready=3)
    assert desired == 3


def test_a_burst_panics_at_once_and_holds_until_a_calm_stable_window():
    kpa = KnativeScaler(8.0, max_nodes=10)
    for t in range(60):
        kpa.observe(float(t), 8.0, ready=1)
    # 6 s of 64 in flight: the panic window asks for 8 nodes, >= 2x the one ready.
    for t in range(60, 66):
        desired = kpa.observe(float(t), 64.0, ready=1)
    assert desired == 8
    # The burst ends: still no scale-down while the panic lasts (60 s from its last sign)...
    for t in range(66, 100):
        assert kpa.observe(float(t), 0.0, ready=8) == 8
    # ...then the stable window's mean rules again.
    for t in range(100, 200):
        desired = kpa.observe(float(t), 0.0, ready=8)
    assert desired == 1
