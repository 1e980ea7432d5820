"""From a scoring pass's sums to numbers: per-series tables, pooled metrics, the M4 measures.

Everything here is pure arithmetic on :class:`~tsforecast.evaluation.scoring.ChunkScores`:

* pooled over every window and step: ``mse_scaled``/``mae_scaled`` (each series on its own
  train-fit scale), ``mse``/``mae``/``rmse`` in the data's units, interval coverage, width and
  pinball loss;
* means over series (M4's definitions): ``smape``, ``mase`` (over the series whose in-sample
  scale is not 0) and ``owa`` against Naive2 (:func:`tsforecast.evaluation.m4.owa`).

For one series the means over series are that series' values, so its MASE is its MAE over the
in-sample seasonal-naive error and its sMAPE the mean over every window and step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tsforecast.evaluation import m4
from tsforecast.evaluation.intervals import level_name
from tsforecast.evaluation.names import BASELINES, FORECASTERS, MODEL_KEY, WORST_BY
from tsforecast.evaluation.scoring import ChunkScores

TIE_RTOL = 1e-6  # errors this close (relative) are a tie, float noise between the LSTM and a baseline


def beats(ours: float, theirs: float) -> bool:
    """Whether error ``ours`` is lower than ``theirs`` by more than float noise (a tie is not a win)."""
    return bool(ours < theirs * (1 - TIE_RTOL))


def series_table(
    scores: ChunkScores, horizon: int, levels: tuple[float, ...], n_origins: int = 1
) -> pd.DataFrame:
    """One row per group (a series; with ``n_origins`` > 1 a series and origin, series-major).

    Columns ``<forecaster>_{smape,mase,mse_scaled,mae_scaled}``, ``lstm_owa`` (the series' own
    relative errors against Naive2), ``coverage_<l>``/``width_scaled_<l>`` (the LSTM's intervals),
    ``n_windows``, ``mase_scale`` and ``seasonal`` (Naive2 treated the series as seasonal).
    """
    n = scores.n_windows.astype(np.float64)
    steps = n * horizon
    scale = np.repeat(scores.mase_scale, n_origins)
    table: dict[str, Any] = {"n_windows": scores.n_windows}
    with np.errstate(invalid="ignore", divide="ignore"):
        for f in FORECASTERS:
            table[f"{f}_smape"] = scores.sums[f"{f}.smape"] / n
            table[f"{f}_mase"] = (scores.sums[f"{f}.sae"] / steps) / scale
            table[f"{f}_mse_scaled"] = scores.sums[f"{f}.sse_scaled"] / steps
            table[f"{f}_mae_scaled"] = scores.sums[f"{f}.sae_scaled"] / steps
        table[f"{MODEL_KEY}_owa"] = 0.5 * (
            table[f"{MODEL_KEY}_smape"] / table["naive2_smape"]
            + table[f"{MODEL_KEY}_mase"] / table["naive2_mase"]
        )
        if MODEL_KEY in scores.covered:
            for i, level in enumerate(levels):
                table[f"coverage_{level_name(level)}"] = scores.covered[MODEL_KEY][:, i] / steps
                table[f"width_scaled_{level_name(level)}"] = scores.width[MODEL_KEY][:, i] / steps
    table["mase_scale"] = scale
    table["seasonal"] = np.repeat(scores.seasonal, n_origins)
    return pd.DataFrame(table)


def m4_summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """sMAPE (mean over series), MASE (mean over series with a defined scale) and OWA vs Naive2."""
    scale = table["mase_scale"].to_numpy()
    scored = np.isfinite(scale) & (scale > 0)
    means = {
        f: (
            float(table[f"{f}_smape"].mean()),
            float(table[f"{f}_mase"].to_numpy()[scored].mean()) if scored.any() else float("nan"),
        )
        for f in FORECASTERS
    }
    ref = means["naive2"]
    return {f: {"smape": s, "mase": m, "owa": m4.owa(s, m, *ref)} for f, (s, m) in means.items()}


def pooled(
    scores: ChunkScores, horizon: int, rows: np.ndarray | slice = slice(None)
) -> dict[str, dict[str, float]]:
    """Scaled and data-unit MSE/MAE/RMSE of every forecaster over every window and step of ``rows``."""
    elements = float(scores.n_windows[rows].sum()) * horizon
    out = {}
    for f in FORECASTERS:
        total = {
            stat: float(scores.sums[f"{f}.{stat}"][rows].sum())
            for stat in ("sse_scaled", "sae_scaled", "sse", "sae")
        }
        mse = total["sse"] / elements
        out[f] = {
            "mse_scaled": total["sse_scaled"] / elements,
            "mae_scaled": total["sae_scaled"] / elements,
            "mse": mse,
            "mae": total["sae"] / elements,
            "rmse": float(np.sqrt(mse)),
        }
    return out


def interval_summary(
    scores: ChunkScores, name: str, horizon: int, levels: tuple[float, ...]
) -> dict[str, Any]:
    """``intervals`` ({level: coverage, width_scaled}) and ``pinball_scaled`` of forecaster ``name``,
    pooled over every window and step; {} when it was scored without intervals."""
    if name not in scores.covered:
        return {}
    elements = float(scores.n_windows.sum()) * horizon
    return {
        "intervals": {
            level_name(lv): {
                "coverage": float(scores.covered[name][:, i].sum() / elements),
                "width_scaled": float(scores.width[name][:, i].sum() / elements),
            }
            for i, lv in enumerate(levels)
        },
        "pinball_scaled": float(scores.sums[f"{name}.pinball"].sum() / elements),
    }


def evaluate_metrics(
    scores: ChunkScores,
    table: pd.DataFrame,
    n_series: int,
    input_size: int,
    period: int,
    levels: tuple[float, ...],
) -> dict[str, Any]:
    """``metrics/evaluate.json``: the LSTM's metrics at the top, each baseline's under ``baselines``."""
    H = scores.step_sse[MODEL_KEY].shape[1]
    flat, m4s = pooled(scores, H), m4_summary(table)
    n_windows = int(scores.n_windows.sum())
    scored = {
        f: {**flat[f], **m4s[f], "n_windows": n_windows, **interval_summary(scores, f, H, levels)}
        for f in FORECASTERS
    }
    ours = scored[MODEL_KEY]
    return {
        **{k: v for k, v in ours.items() if k not in ("intervals", "pinball_scaled")},
        "n_series": n_series,
        "n_series_mase": int((np.isfinite(table["mase_scale"]) & (table["mase_scale"] > 0)).sum()),
        "n_seasonal": int(table["seasonal"].sum()),
        "baselines": {b: scored[b] for b in BASELINES},
        "beats": {b: beats(ours["mse_scaled"], scored[b]["mse_scaled"]) for b in BASELINES},
        "beats_owa": {b: beats(ours["owa"], scored[b]["owa"]) for b in BASELINES},
        "intervals": ours.get("intervals", {}),
        **{k: ours[k] for k in ("pinball_scaled",) if k in ours},
        "horizon": H,
        "input_size": input_size,
        "seasonal_period": period,
        "worst_series_by": WORST_BY,
    }


def error_by_step(scores: ChunkScores) -> list[dict[str, float]]:
    """Scaled MSE at each horizon step, averaged over series (each series' mean over its windows)."""
    n = np.maximum(scores.n_windows, 1)[:, None]
    per = {f: (scores.step_sse[f] / n).mean(axis=0) for f in FORECASTERS}
    H = len(per[MODEL_KEY])
    return [{"step": k + 1, **{f: float(per[f][k]) for f in FORECASTERS}} for k in range(H)]


def worst_series(table: pd.DataFrame, k: int) -> list[int]:
    """Positions of the ``k`` series with the highest LSTM MASE (sMAPE where no MASE is defined)."""
    key = table[f"{MODEL_KEY}_{WORST_BY}"].replace([np.inf, -np.inf], np.nan)
    if key.isna().all():
        key = table[f"{MODEL_KEY}_smape"]
    return [int(i) for i in np.argsort(-key.fillna(-np.inf).to_numpy(), kind="stable")[:k]]


def worst_windows(window_mae: np.ndarray, series: np.ndarray, mase_scale: np.ndarray, k: int) -> list[int]:
    """Positions of the ``k`` windows with the highest LSTM MASE (their MAE over their series'
    in-sample scale; by MAE where no series has a scale), in window order (series, then time)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        key = window_mae / mase_scale[series]
    if not np.isfinite(key).any():
        key = np.asarray(window_mae, dtype=np.float64)
    key = np.where(np.isfinite(key), key, -np.inf)
    return sorted(int(i) for i in np.argsort(-key, kind="stable")[:k])


__all__ = [
    "TIE_RTOL",
    "beats",
    "error_by_step",
    "evaluate_metrics",
    "interval_summary",
    "m4_summary",
    "pooled",
    "series_table",
    "worst_series",
    "worst_windows",
]
