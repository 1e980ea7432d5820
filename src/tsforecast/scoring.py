"""Scoring a model on the current test windows, for the register stage's checks and the gate.

Evaluation owns scoring: everything here calls :func:`tsforecast.evaluate.score`, the same
function the evaluate stage uses, so "the same test windows" means exactly evaluate's.

* :func:`rescore_mismatch`: does ``metrics/evaluate.json`` describe this model on this data?
* :func:`score_on`: an older model (a champion trained on older rows, with its own scaler)
  scored on the current windows, in the current scale (:class:`OnScale`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from tsforecast.errors import DataError
from tsforecast.evaluate import score
from tsforecast.model import LSTMForecaster
from tsforecast.windowing import Prepared, StandardScaler

SCORE_RTOL = 1e-4  # evaluate.json vs a re-score of model.pt: float noise across machines only


def rescore_mismatch(
    model: LSTMForecaster, prepared: Prepared, metrics: dict[str, Any], seasonal_period: int
) -> str | None:
    """None when ``metrics`` (evaluate.json) is what ``model`` scores on ``prepared``; else what differs.

    Raises :class:`DataError` when the model does not fit the data at all.
    """
    rescored = score(model, prepared, min(seasonal_period, prepared.input_size)).metrics
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


def score_on(
    model: LSTMForecaster, extra: dict[str, Any], prepared: Prepared, seasonal_period: int
) -> tuple[float | None, str]:
    """``model``'s test mse_scaled on ``prepared``'s windows, or (None, why it cannot be scored)."""
    columns = list(extra.get("columns") or [])
    if columns != list(prepared.columns):
        return None, f"it was trained on columns {columns}, the data has {list(prepared.columns)}"
    a, p = model.args, prepared
    if (a.input_size, a.horizon) != (p.input_size, p.horizon):
        return None, (
            f"it has (input_size, horizon)={(a.input_size, a.horizon)}, the test windows "
            f"{(p.input_size, p.horizon)}"
        )
    own = StandardScaler.from_dict(extra["scaler"]) if "scaler" in extra else p.scaler
    wrapped = OnScale(model, own, p.scaler).eval()
    try:
        metrics = score(wrapped, p, min(seasonal_period, p.input_size)).metrics  # type: ignore[arg-type]
    except DataError as e:
        return None, str(e)
    return float(metrics["mse_scaled"]), ""


__all__ = ["SCORE_RTOL", "OnScale", "rescore_mismatch", "score_on"]
