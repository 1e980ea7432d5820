"""Stage ``backtest`` for a panel: rolling origins inside every series' test part, no refit.

Each series forecasts from ``n`` origins at evenly spaced positions among its stride-1 test
windows (the first and, for ``n >= 2``, the last; as the one-series backtest picks them), with
the trained weights and each series' train-fit scaler fixed. ``n`` is ``backtest.n_cutoffs``,
or fewer when some series' test part allows fewer origins (the M4 protocol, test = H, allows
one): ``metrics/backtest.json`` reports the number used (``n_cutoffs``) and the one asked for
(``n_cutoffs_requested``). Origin ``k`` of every series is scored together: ``by_cutoff[k]``
pools its windows over the series (``mse_scaled``, ``mae_scaled``) and averages the M4
measures over the series (``smape``, ``mase``, ``owa`` against Naive2), for the LSTM and each
baseline. Per-series work runs through ``parallel.map_series`` (Dask at
``orchestration.dask_address``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsforecast.config import BacktestConfig, EvaluateConfig, OrchestrationConfig
from tsforecast.dataset.panel import Panel, load_panel
from tsforecast.evaluation.panel_evaluate import m4_summary, pooled, series_table
from tsforecast.evaluation.plots import COLORS, LABELS
from tsforecast.evaluation.scoring import (
    BASELINES,
    FORECASTERS,
    MODEL_KEY,
    Job,
    check_model,
    origins_available,
    score_panel,
)
from tsforecast.io import atomic_file, write_json, write_png
from tsforecast.paths import Paths
from tsforecast.training.model import load_model

log = logging.getLogger(__name__)

BACKTEST_JSON = "backtest.json"
BACKTEST_PARQUET = "backtest.parquet"


@dataclass(frozen=True)
class PanelBacktestResult:
    n_cutoffs: int
    n_cutoffs_requested: int
    n_series: int
    refit: bool
    mse_scaled: float
    repeat_last_mse_scaled: float
    seasonal_naive_mse_scaled: float
    owa: float


def origin_timestamps(panel: Panel, series: np.ndarray, rows: np.ndarray) -> pd.DatetimeIndex:
    """The timestamps of local ``rows`` of ``series`` (vectorised for fixed frequencies)."""
    offset = to_offset(panel.freq)
    first = pd.DatetimeIndex(panel.first[series])
    try:
        step = pd.Timedelta(offset)
    except ValueError:  # calendar offsets (MS, W-SUN, ...): one series at a time
        return pd.DatetimeIndex([f + int(r) * offset for f, r in zip(first, rows, strict=True)])
    return first + pd.to_timedelta(rows * step.value, unit="ns")


def _scores(
    flat: dict[str, dict[str, float]], m4s: dict[str, dict[str, float]], name: str
) -> dict[str, float]:
    return {**flat[name], **m4s[name]}


def backtest_metrics(
    scores: Any, table: pd.DataFrame, panel: Panel, n: int, requested: int, period: int
) -> dict[str, Any]:
    """The ``metrics/backtest.json`` contract for a panel (see the module doc)."""
    H, S = panel.horizon, panel.n_series
    origin = scores.origin.reshape(S, n)
    to_end = panel.lengths[:, None] - 1 - origin  # (S, n) steps from each origin to its series' end
    by_cutoff = []
    for k in range(n):
        rows = np.arange(k, S * n, n)
        flat, m4s = pooled(scores, H, rows), m4_summary(table.iloc[rows])
        steps = to_end[:, k]
        by_cutoff.append(
            {
                "cutoff": int(np.median(steps)),  # steps before each series' last row (median)
                "origin": k + 1,
                "steps_to_end_min": int(steps.min()),
                "steps_to_end_max": int(steps.max()),
                **_scores(flat, m4s, MODEL_KEY),
                "baselines": {b: _scores(flat, m4s, b) for b in BASELINES},
            }
        )
    flat, m4s = pooled(scores, H), m4_summary(table)
    ours = _scores(flat, m4s, MODEL_KEY)
    return {
        "n_cutoffs": n,
        "n_cutoffs_requested": requested,
        "n_series": S,
        **ours,
        "baselines": {b: _scores(flat, m4s, b) for b in BASELINES},
        "beats": {b: bool(ours["mse_scaled"] < flat[b]["mse_scaled"]) for b in BASELINES},
        "refit": False,
        "horizon": H,
        "input_size": panel.input_size,
        "seasonal_period": period,
        "by_cutoff": by_cutoff,
    }


def backtest_rows(scores: Any, table: pd.DataFrame, panel: Panel, n: int) -> pd.DataFrame:
    """``metrics/backtest.parquet``: one row per series and origin with its cutoff and scores."""
    S = panel.n_series
    s = np.repeat(np.arange(S), n)
    frame = pd.DataFrame(
        {
            str(panel.ids.name or "id"): panel.ids.to_numpy()[s],
            "origin": np.tile(np.arange(1, n + 1), S),
            "cutoff": origin_timestamps(panel, s, scores.origin),
        }
    )
    return pd.concat([frame, table.reset_index(drop=True)], axis=1)


def plot_backtest(metrics: dict[str, Any], path: Any) -> None:
    """Scaled MSE (left) and OWA (right) of the forecasts from each origin, the LSTM against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origins = [c["origin"] for c in metrics["by_cutoff"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for ax, key in zip(axes, ("mse_scaled", "owa"), strict=True):
        for name in FORECASTERS:
            values = [
                c[key] if name == MODEL_KEY else c["baselines"][name][key] for c in metrics["by_cutoff"]
            ]
            main = name == MODEL_KEY
            ax.plot(origins, values, color=COLORS[name], marker="o", lw=2 if main else 1.3,
                    ls="-" if main else "--", label=LABELS[name])  # fmt: skip
        ax.set_xlabel("origin (k-th of each series' test part)")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(
        f"Backtest over {metrics['n_series']} series: {metrics['n_cutoffs']} origins each, "
        f"H={metrics['horizon']}, no refit"
    )
    fig.tight_layout()
    write_png(fig, path)


def run_panel_backtest(
    evaluate: EvaluateConfig, backtest: BacktestConfig, orchestration: OrchestrationConfig, paths: Paths
) -> PanelBacktestResult:
    """Forecast from up to ``backtest.n_cutoffs`` origins in each series' test part; score each origin."""
    panel = load_panel(paths.prepared)  # edge: read
    model, _ = load_model(paths.models / "model.pt")
    check_model(model, panel)
    requested, available = backtest.n_cutoffs, origins_available(panel)
    n = max(1, min(requested, available))
    if n < requested:
        log.warning(
            "backtest.n_cutoffs=%d but the shortest test part allows %d origin(s) per series: using %d",
            requested,
            available,
            n,
        )
    period = evaluate.seasonal_period
    job = Job.for_model(model, period, n_origins=n)
    scores = score_panel(job, panel, orchestration.dask_address, desc="backtest")  # compute
    table = series_table(scores, panel.horizon, (), n_origins=n)
    m = backtest_metrics(scores, table, panel, n, requested, period)
    frame = backtest_rows(scores, table, panel, n)
    plot_rows = [
        {"origin": c["origin"], "cutoff": c["cutoff"], MODEL_KEY: c["mse_scaled"],
         **{b: c["baselines"][b]["mse_scaled"] for b in BASELINES}}
        for c in m["by_cutoff"]
    ]  # fmt: skip
    with atomic_file(paths.metrics / BACKTEST_PARQUET, "wb") as fh:  # edge: atomic writes
        frame.to_parquet(fh, index=False)
    plot_backtest(m, paths.plots / "backtest.png")
    write_json(paths.plots / BACKTEST_JSON, plot_rows)
    write_json(paths.metrics / BACKTEST_JSON, m)
    log.info(
        "backtest over %d series x %d origins (no refit): mse_scaled LSTM %.5f, seasonal_naive %.5f; OWA %.3f",
        m["n_series"],
        n,
        m["mse_scaled"],
        m["baselines"]["seasonal_naive"]["mse_scaled"],
        m["owa"],
    )
    return PanelBacktestResult(
        n_cutoffs=n,
        n_cutoffs_requested=requested,
        n_series=m["n_series"],
        refit=False,
        mse_scaled=round(m["mse_scaled"], 6),
        repeat_last_mse_scaled=round(m["baselines"]["repeat_last"]["mse_scaled"], 6),
        seasonal_naive_mse_scaled=round(m["baselines"]["seasonal_naive"]["mse_scaled"], 6),
        owa=round(m["owa"], 4),
    )


__all__ = [
    "PanelBacktestResult",
    "backtest_metrics",
    "backtest_rows",
    "origin_timestamps",
    "plot_backtest",
    "run_panel_backtest",
]
