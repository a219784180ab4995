"""Forecast error of last value, EWMA and Holt on the Azure traces (issue #7: choose by measurement).

    .venv/bin/python benchmarks/bench_forecast.py [--json]

For each trace and interval length, each method's parameters are tuned on the first
half of the trace (grid search on MAE) and scored on the second half, one interval
ahead; the scheduler's default (EWMA alpha 0.3 at 1 s) is scored on the second half
too. Prints a markdown table for docs/benchmarks.md (MAE relative to last value:
below 1 is better than the naive anchor).
"""

from __future__ import annotations

import itertools
import json
import sys

import scheduler_scenarios as sc

from autoglm_cli.ops.bench.trace import load_trace
from autoglm_cli.runtime.scheduler.dynamic import DynamicSettings
from autoglm_cli.runtime.scheduler.forecast import Ewma, Holt, LastValue, evaluate, rates_per_interval

INTERVALS_S = (1.0, 5.0, 10.0)
ALPHAS = (0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
BETAS = (0.05, 0.1, 0.2, 0.4)
PHIS = (0.8, 0.9, 1.0)


def candidates():
    yield "last-value", {}, LastValue
    for alpha in ALPHAS:
        yield "ewma", {"alpha": alpha}, lambda a=alpha: Ewma(a)
    for alpha, beta, phi in itertools.product(ALPHAS, BETAS, PHIS):
        yield "holt", {"alpha": alpha, "beta": beta, "phi": phi}, lambda a=alpha, b=beta, p=phi: Holt(a, b, p)


def measure(series: list[float]) -> list[dict]:
    half = len(series) // 2
    train, test = series[:half], series[half:]
    best: dict[str, tuple[float, dict, object]] = {}
    for name, params, make in candidates():
        mae = evaluate(train, make()).mae
        if name not in best or mae < best[name][0]:
            best[name] = (mae, params, make)
    rows = []
    for name, (_, params, make) in best.items():
        err = evaluate(test, make())
        rows.append(
            {
                "method": name,
                "params": params,
                "mae": err.mae,
                "rmse": err.rmse,
                "bias": err.bias,
                "under": err.under,
            }
        )
    return rows


def main() -> int:
    default = DynamicSettings()
    results = []
    for label, path in (("code (bursty)", sc.CODE_TRACE), ("conv", sc.CONV_TRACE)):
        times = [r.offset_s for r in load_trace(path)]
        for interval in INTERVALS_S:
            series = rates_per_interval(times, interval)
            rows = measure(series)
            if interval == default.forecast_interval_s:
                test = series[len(series) // 2 :]
                err = evaluate(test, Ewma(**default.forecaster_params))
                rows.append(
                    {
                        "method": "ewma (scheduler default)",
                        "params": default.forecaster_params,
                        "mae": err.mae,
                        "rmse": err.rmse,
                        "bias": err.bias,
                        "under": err.under,
                    }
                )
            naive = next(r["mae"] for r in rows if r["method"] == "last-value")
            for row in rows:
                results.append(
                    {"trace": label, "interval_s": interval, **row, "mae_vs_last": row["mae"] / naive}
                )
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return 0
    print("| trace | interval | method | parameters (tuned on 1st half) | MAE req/s | RMSE | under |", end="")
    print(" MAE vs last value |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        print(
            f"| {r['trace']} | {r['interval_s']:.0f} s | {r['method']} | {params} | {r['mae']:.3f} | "
            f"{r['rmse']:.3f} | {r['under']:.3f} | {r['mae_vs_last']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
