"""Scoring a model on the current test windows, for the register stage's checks and the gate.

Evaluation owns scoring: everything here runs :mod:`tsforecast.evaluation.scoring`, the chunked
scorer the evaluate stage uses, so "the same test windows" means exactly evaluate's. One series
is a panel of one, so both jobs take the panel in ``data/prepared/`` whatever its size:

* :func:`rescore_mismatch`: do ``metrics/evaluate.json`` and ``metrics/by_series.parquet`` describe
  this model on this data? A sample of series (every series of a small panel) is re-scored.
* :func:`score_on`: an older model (a champion trained on older rows, with its own scalers)
  scored on the current windows, in the current scale.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.dataset.panel import Panel
from tsforecast.errors import DataError
from tsforecast.training.card import ModelCard
from tsforecast.training.model import LSTMForecaster

SCORE_RTOL = 1e-4  # evaluate.json vs a re-score of model.pt: float noise across machines only
RESCORE_SAMPLE = 32  # series re-scored to check by_series.parquet (cheap at any size)
MSE_COLUMN = "lstm_mse_scaled"  # by_series.parquet's column of the model's mse_scaled


def _counts(panel: Panel, metrics: dict[str, Any], by_series: pd.DataFrame) -> str | None:
    """What differs between the recorded counts and the panel's, if anything."""
    recorded = (int(metrics.get("n_windows", -1)), len(by_series))
    expected = (panel.windows("test").total, panel.n_series)
    if "n_series" in metrics:
        recorded, expected = (int(metrics["n_series"]), *recorded), (panel.n_series, *expected)
        what = "(n_series, n_windows, by_series rows)"
    else:
        what = "(n_windows, by_series rows)"
    return None if recorded == expected else f"{what}={recorded}; the panel has {expected}"


def rescore_mismatch(
    model: LSTMForecaster,
    panel: Panel,
    metrics: dict[str, Any],
    by_series: pd.DataFrame | None,
    seasonal_period: int,
    sample: int = RESCORE_SAMPLE,
) -> str | None:
    """None when ``metrics`` (evaluate.json) and ``by_series`` (by_series.parquet) describe ``model`` on
    ``panel``; else what differs. Re-scores ``sample`` series spread over the panel; when that is
    every series, the pooled ``mse_scaled`` of evaluate.json is checked as well.

    Raises :class:`DataError` when the model does not fit the panel at all.
    """
    from tsforecast.evaluation.scoring import Job, check_model, concat, panel_slice, score_chunk

    check_model(model, panel)
    if by_series is None:
        return "metrics/by_series.parquet is missing"
    if (counts := _counts(panel, metrics, by_series)) is not None:
        return counts
    picks = np.unique(np.linspace(0, panel.n_series - 1, min(sample, panel.n_series)).round().astype(int))
    ids = by_series.iloc[picks, 0].astype(str).tolist()
    if ids != [str(panel.ids[i]) for i in picks]:
        return (
            f"by_series.parquet lists series {ids[:3]}... "
            f"where the panel has {[str(panel.ids[i]) for i in picks[:3]]}..."
        )
    job = Job.for_model(model, seasonal_period)
    scores = concat([score_chunk(job, panel_slice(panel, i, i + 1)) for i in picks])
    sse = scores.sums["lstm.sse_scaled"]
    rescored = sse / (scores.n_windows * panel.horizon)
    recorded = by_series[MSE_COLUMN].to_numpy()[picks]
    bad = ~np.isclose(rescored, recorded, rtol=SCORE_RTOL, atol=1e-12)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return (
            f"series {ids[i]}: mse_scaled {recorded[i]:.6g} in by_series.parquet; re-scored: {rescored[i]:.6g} "
            f"({int(bad.sum())} of {len(picks)} re-scored series differ)"
        )
    if len(picks) < panel.n_series:
        return None
    pooled, mse = float(sse.sum() / (scores.n_windows.sum() * panel.horizon)), float(metrics["mse_scaled"])
    if math.isclose(pooled, mse, rel_tol=SCORE_RTOL, abs_tol=1e-12):
        return None
    return f"mse_scaled {mse:.6g} over {metrics.get('n_windows')} windows; re-scored: {pooled:.6g}"


def on_own_scale(card: ModelCard, panel: Panel) -> Panel:
    """``panel`` scaled as ``card``'s model was trained: each series the card knows with the card's
    scaler, the others with the panel's own (the data's train rows)."""
    mean, std = card.series_scalers.arrays()
    known = pd.Index([str(i) for i in card.series_scalers.ids]).get_indexer([str(i) for i in panel.ids])
    have = known >= 0
    own_mean, own_std = panel.mean.copy(), panel.std.copy()
    own_mean[have], own_std[have] = mean[known[have]], std[known[have]]
    return replace(panel, mean=own_mean, std=own_std)


def score_on(
    model: LSTMForecaster, card: ModelCard, panel: Panel, seasonal_period: int
) -> tuple[float | None, str]:
    """``model``'s test mse_scaled on ``panel``'s windows, or (None, why it cannot be scored).

    The model reads each series scaled as it was trained (:func:`on_own_scale`); its errors are
    measured on the *current* scale (each series' std over its current train rows, as evaluate
    does), so a champion trained on older rows is judged on exactly the contender's test windows.
    """
    from tsforecast.evaluation.scoring import Job, score_panel

    if list(card.columns) != list(panel.columns):
        return None, f"it was trained on columns {list(card.columns)}, the data has {list(panel.columns)}"
    if card.id_column != panel.id_column:
        return None, f"it was trained with id column {card.id_column!r}, the data has {panel.id_column!r}"
    a = model.args
    if (a.input_size, a.horizon) != (panel.input_size, panel.horizon):
        return None, (
            f"it has (input_size, horizon)={(a.input_size, a.horizon)}, the test windows "
            f"{(panel.input_size, panel.horizon)}"
        )
    try:
        scores = score_panel(
            Job.for_model(model, seasonal_period), on_own_scale(card, panel), desc="re-score"
        )
    except DataError as e:
        return None, str(e)
    sse = scores.sums["lstm.sse"] / panel.std[:, 0] ** 2  # (S,) data units -> the current scale
    return float(sse.sum() / (scores.n_windows.sum() * panel.horizon)), ""


__all__ = ["RESCORE_SAMPLE", "SCORE_RTOL", "on_own_scale", "rescore_mismatch", "score_on"]
