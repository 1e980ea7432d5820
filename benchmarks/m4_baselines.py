"""Seasonal naive and Naive2 on M4 hourly validation windows: what the panel model must beat.

    python benchmarks/m4_baselines.py            # prints a table, writes benchmarks/m4_baselines.json
    python benchmarks/m4_baselines.py --output PATH

The protocol is the M4 hourly one (forecast 48 hours, m = 24, sMAPE / MASE / OWA against
Naive2, ``tsforecast.evaluation.m4``) applied to VALIDATION windows: the last 48 hours of each of the 414
embedded training series are held out, and every method sees only the hours before them. The
M4 test part is never read. Published test-set numbers (the 48 hours after each training
series) are quoted for reference only; validation numbers differ from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tsforecast.data.datasets import (
    M4_HOURLY_HORIZON,
    M4_HOURLY_SEASONALITY,
    M4_HOURLY_SHA256,
    m4_hourly_arrays,
)
from tsforecast.evaluation import m4
from tsforecast.io import write_json

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "m4_baselines.json"
# Makridakis et al. (2020), hourly test set: seasonal naive OWA, and the winner (Smyl's ES-RNN).
PUBLISHED_TEST_OWA = {"seasonal_naive": 0.628, "winner_es_rnn": 0.440}


def validation_split(
    series: list[np.ndarray], horizon: int = M4_HOURLY_HORIZON
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each training series cut into (history, last ``horizon`` values): histories and (n, horizon)."""
    short = [i for i, x in enumerate(series) if x.size <= horizon]
    if short:
        raise ValueError(f"series {short[:5]} have no more than {horizon} values: none left to fit on")
    return [x[:-horizon] for x in series], np.stack([x[-horizon:] for x in series])


def baseline_scores(horizon: int = M4_HOURLY_HORIZON, m: int = M4_HOURLY_SEASONALITY) -> dict[str, Any]:
    """sMAPE, MASE and OWA of naive, seasonal naive and Naive2 on the validation windows."""
    ids, series = m4_hourly_arrays()
    history, actuals = validation_split(series, horizon)
    forecasts = {
        "naive": m4.naive_forecast(history, horizon),
        "seasonal_naive": m4.seasonal_naive_forecast(history, horizon, m),
        "naive2": m4.naive2_forecast(history, horizon, m),
    }
    methods = {}
    aggregate: dict[str, Any] = {}
    for name, forecast in forecasts.items():
        aggregate, _ = m4.panel_scores(actuals, forecast, history, m, ids=ids)
        methods[name] = {k: aggregate[k] for k in ("smape", "mase", "owa")}
    return {
        "protocol": (
            f"M4 hourly training series (sha256 {M4_HOURLY_SHA256[:12]}...); validation window = "
            f"the last {horizon} hours of each series, fitted on the hours before; m = {m}"
        ),
        "n_series": aggregate["n_series"],
        "n_seasonal": aggregate["n_seasonal"],
        "horizon": horizon,
        "seasonal_period": m,
        "methods": methods,
        "published_test_owa": PUBLISHED_TEST_OWA,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'method':<16}{'sMAPE':>9}{'MASE':>9}{'OWA':>8}"]
    for name, row in result["methods"].items():
        lines.append(f"{name:<16}{row['smape']:>9.3f}{row['mase']:>9.3f}{row['owa']:>8.3f}")
    lines.append(
        f"({result['n_series']} series, {result['n_seasonal']} seasonal by M4's test; "
        f"published TEST-set OWA: seasonal naive {PUBLISHED_TEST_OWA['seasonal_naive']}, "
        f"winner {PUBLISHED_TEST_OWA['winner_es_rnn']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON to write")
    args = parser.parse_args(argv)
    result = baseline_scores()
    print(format_table(result))
    write_json(args.output, result)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
