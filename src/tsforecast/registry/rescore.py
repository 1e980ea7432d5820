"""Scoring a model on the current test windows, for the register stage's checks and the gate.

Evaluation owns scoring: everything here calls :mod:`tsforecast.evaluation.scoring`, as the evaluate
stage does, so "the same test windows" means exactly evaluate's.

* :func:`rescore_mismatch`: does ``metrics/evaluate.json`` describe this model on this data?
* :func:`score_on`: an older model (a champion trained on older rows, with its own scaler)
  scored on the current windows, in the current scale (:class:`OnScale`).
* a panel: :func:`panel_rescore_mismatch` re-scores a sample of series against
  ``metrics/by_series.parquet``; :func:`score_on_panel` scores a champion on the whole panel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tsforecast.dataset.panel import Panel
from tsforecast.dataset.window import Prepared, StandardScaler
from tsforecast.errors import DataError
from tsforecast.training.model import LSTMForecaster

SCORE_RTOL = 1e-4  # evaluate.json vs a re-score of model.pt: float noise across machines only
PANEL_RESCORE_SAMPLE = 32  # a panel: series re-scored to check by_series.parquet (cheap at any size)


def rescore_mismatch(
    model: LSTMForecaster, prepared: Prepared, metrics: dict[str, Any], seasonal_period: int
) -> str | None:
    """None when ``metrics`` (evaluate.json) is what ``model`` scores on ``prepared``; else what differs.

    Raises :class:`DataError` when the model does not fit the data at all.
    """
    rescored = _one_series_format(prepared)
    mse = float(metrics["mse_scaled"])
    same = math.isclose(rescored["mse_scaled"], mse, rel_tol=SCORE_RTOL, abs_tol=1e-12) and int(
        rescored["n_windows"]
    ) == int(metrics.get("n_windows", -1))
    if same:
        return None
    return (
        f"mse_scaled {mse:.6g} over {metrics.get('n_windows')} windows; re-scored: "
        f"{rescored['mse_scaled']:.6g} over {rescored['n_windows']} windows"
    )


class OnScale(nn.Module):
    """A model trained with scaler ``own``, run on data scaled with ``data``'s scaler.

    Inputs are mapped to ``own``'s scale and forecasts back to ``data``'s, so a champion
    trained on older data is scored on the current windows in the current scale.
    """

    def __init__(self, model: LSTMForecaster, own: StandardScaler, data: StandardScaler) -> None:
        super().__init__()
        self.model = model
        self.args = model.args
        own_mean, own_std = np.asarray(own.mean), np.asarray(own.std)
        data_mean, data_std = np.asarray(data.mean), np.asarray(data.std)
        self.register_buffer("a", torch.tensor(data_std / own_std, dtype=torch.float32))  # (C,)
        self.register_buffer("b", torch.tensor((data_mean - own_mean) / own_std, dtype=torch.float32))
        self.out_a = float(own_std[0] / data_std[0])
        self.out_b = float((own_mean[0] - data_mean[0]) / data_std[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x * self.a + self.b)  # (B, L, C) on own's scale -> (B, H)
        return y * self.out_a + self.out_b  # back on the data's scale


def panel_rescore_mismatch(
    model: LSTMForecaster,
    panel: Panel,
    metrics: dict[str, Any],
    by_series: pd.DataFrame | None,
    seasonal_period: int,
    sample: int = PANEL_RESCORE_SAMPLE,
) -> str | None:
    """None when ``metrics`` (evaluate.json) and ``by_series`` (by_series.parquet) describe ``model`` on
    ``panel``; else what differs. Re-scores ``sample`` series spread over the panel, not all of them.

    Raises :class:`DataError` when the model does not fit the panel at all.
    """
    from tsforecast.evaluation.scoring import Job, check_model, concat, panel_slice, score_chunk

    check_model(model, panel)
    if by_series is None:
        return "metrics/by_series.parquet is missing"
    counts = (int(metrics.get("n_series", -1)), int(metrics.get("n_windows", -1)), len(by_series))
    expected = (panel.n_series, panel.windows("test").total, panel.n_series)
    if counts != expected:
        return f"(n_series, n_windows, by_series rows)={counts}; the panel has {expected[:2]}"
    picks = np.unique(np.linspace(0, panel.n_series - 1, min(sample, panel.n_series)).round().astype(int))
    job = Job.for_model(model, seasonal_period)
    scores = concat([score_chunk(job, panel_slice(panel, i, i + 1)) for i in picks])
    rescored = scores.sums["lstm.sse_scaled"] / (scores.n_windows * panel.horizon)
    recorded = by_series["lstm_mse_scaled"].to_numpy()[picks]
    ids = by_series.iloc[picks, 0].astype(str).tolist()
    if ids != [str(panel.ids[i]) for i in picks]:
        return f"by_series.parquet lists series {ids[:3]}... where the panel has {[str(panel.ids[i]) for i in picks[:3]]}..."
    bad = ~np.isclose(rescored, recorded, rtol=SCORE_RTOL, atol=1e-12)
    if not bad.any():
        return None
    i = int(np.flatnonzero(bad)[0])
    return (
        f"series {ids[i]}: mse_scaled {recorded[i]:.6g} in by_series.parquet; re-scored: {rescored[i]:.6g} "
        f"({int(bad.sum())} of {len(picks)} re-scored series differ)"
    )


def score_on_panel(
    model: LSTMForecaster, extra: dict[str, Any], panel: Panel, seasonal_period: int
) -> tuple[float | None, str]:
    """A panel model's test mse_scaled on ``panel``'s windows, or (None, why it cannot be scored).

    A global model is scored with the *current* panel's per-series scalers (each series scaled on
    its own train rows, as evaluate does): the scaling belongs to the data, so a champion trained
    on older rows (or without some of today's series) is judged on exactly the contender's inputs.
    """
    from tsforecast.evaluation.evaluate import evaluate_model

    columns = list(extra.get("columns") or [])
    if columns != list(panel.columns):
        return None, f"it was trained on columns {columns}, the data has {list(panel.columns)}"
    if not extra.get("id_column") and panel.id_column is not None:
        # TEMPORARY (monitoring branch, until the registry wing merges): one series is a panel of
        # one, so a one-series champion is re-scored on a one-series panel like any panel model
        return None, "it was trained on one series, the data is a panel"
    try:
        metrics, _, _ = evaluate_model(model, panel, seasonal_period, levels=())
    except DataError as e:
        return None, str(e)
    return float(metrics["mse_scaled"]), ""


def score_on(
    model: LSTMForecaster, extra: dict[str, Any], prepared: Prepared | Panel, seasonal_period: int
) -> tuple[float | None, str]:
    """``model``'s test mse_scaled on ``prepared``'s windows, or (None, why it cannot be scored)."""
    if isinstance(prepared, Panel):
        return score_on_panel(model, extra, prepared, seasonal_period)
    if extra.get("id_column"):
        return None, "it was trained on a panel, the data is one series"
    columns = list(extra.get("columns") or [])
    if columns != list(prepared.columns):
        return None, f"it was trained on columns {columns}, the data has {list(prepared.columns)}"
    a, p = model.args, prepared
    if (a.input_size, a.horizon) != (p.input_size, p.horizon):
        return None, (
            f"it has (input_size, horizon)={(a.input_size, a.horizon)}, the test windows "
            f"{(p.input_size, p.horizon)}"
        )
    try:
        metrics = _one_series_format(p)
    except DataError as e:
        return None, str(e)
    return float(metrics["mse_scaled"]), ""


def _one_series_format(prepared: Prepared) -> dict[str, Any]:
    """The one-series prepared format has no scorer any more: the window stage writes a panel."""
    raise DataError(
        f"data/prepared/ holds the old one-series format ({prepared.series.shape[0]} rows); "
        "run `dvc repro` (the window stage now writes a panel for every data set)"
    )


__all__ = [
    "SCORE_RTOL",
    "OnScale",
    "panel_rescore_mismatch",
    "rescore_mismatch",
    "score_on",
    "score_on_panel",
]
