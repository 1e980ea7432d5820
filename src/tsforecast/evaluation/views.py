"""Test windows forecast again in-process, for the plots and ``plots/forecast.json``.

A :class:`WindowView` holds what a plot panel draws, in the data's units: the history before the
origin, the actuals, every forecaster's forecast, the LSTM's interval band and a title with the
window's own MASE and sMAPE (the LSTM's and Naive2's). :func:`window_views` forecasts every
window asked for in one LSTM batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.dataset.panel import Panel
from tsforecast.evaluation import m4
from tsforecast.evaluation.baselines import naive2_parts
from tsforecast.evaluation.intervals import Calibration
from tsforecast.evaluation.names import MODEL_KEY
from tsforecast.evaluation.scoring import forecasts_at
from tsforecast.training.model import LSTMForecaster

HISTORY_MIN = 48  # rows of history a plot shows at least (bounded by the input window)


@dataclass(frozen=True)
class WindowView:
    """One window in data units: history tail, actuals, forecasts, the LSTM's band, a title."""

    sid: Any
    title: str
    history_t: pd.DatetimeIndex
    history: np.ndarray
    future_t: pd.DatetimeIndex
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    band: tuple[np.ndarray, np.ndarray] | None


def window_views(
    net: LSTMForecaster,
    panel: Panel,
    windows: Sequence[tuple[int, int]],
    period: int,
    calibration: Calibration,
    level: float | None,
) -> list[WindowView]:
    """Forecast the ``windows`` (series, local start row) with the LSTM and the baselines."""
    s = np.array([w[0] for w in windows], dtype=np.int64)
    starts = np.array([w[1] for w in windows], dtype=np.int64)
    series = np.unique(s)
    insample = [panel.histories(int(i), int(i) + 1, before="test")[0] for i in series]
    _, si_some = naive2_parts(insample, period)
    si = np.ones((panel.n_series, si_some.shape[1]))
    si[series] = si_some  # only the plotted series' indices are read
    scale = dict(zip(series.tolist(), m4.mase_scale(insample, period).tolist(), strict=True))
    fc = forecasts_at(panel, s, starts, period, si, net)  # one LSTM batch
    bands = None
    if level is not None and not calibration.empty:
        lo, hi = calibration.bounds(fc.scaled[MODEL_KEY], level)
        bands = (panel.inverse_target(s, lo), panel.inverse_target(s, hi))
    L, H = panel.input_size, panel.horizon
    views = []
    for k, (i, o) in enumerate(zip(s.tolist(), fc.origin.tolist(), strict=True)):
        y = fc.y_raw[k]
        err = {name: float(np.mean(np.abs(f[k] - y))) for name, f in fc.raw.items()}
        mase = {name: e / scale[i] if scale[i] > 0 else float("nan") for name, e in err.items()}
        smape = {name: float(m4.smape(y, f[k])[0]) for name, f in fc.raw.items()}
        ts = panel.timestamps(i)
        tail = min(o + 1, L, max(3 * H, HISTORY_MIN))
        title = (
            f"{panel.ids[i]} from {ts[o]:%Y-%m-%d %H:%M}: MASE {mase[MODEL_KEY]:.2f} (Naive2 "
            f"{mase['naive2']:.2f}), sMAPE {smape[MODEL_KEY]:.1f} (Naive2 {smape['naive2']:.1f})"
        )
        views.append(
            WindowView(
                sid=panel.ids[i],
                title=title,
                history_t=ts[o + 1 - tail : o + 1],
                history=panel.series(i)[o + 1 - tail : o + 1, 0].astype(np.float64),
                future_t=ts[o + 1 : o + 1 + H],
                actual=y,
                forecasts={name: f[k] for name, f in fc.raw.items()},
                band=None if bands is None else (bands[0][k], bands[1][k]),
            )
        )
    return views


def forecast_rows(view: WindowView, id_key: str) -> list[dict[str, Any]]:
    """``plots/forecast.json``: one window, a row per step (``id_key`` holds the series id)."""
    return [
        {
            "timestamp": str(t),
            "step": k + 1,
            id_key: str(view.sid),
            "actual": float(view.actual[k]),
            "forecast": float(view.forecasts[MODEL_KEY][k]),
            "seasonal_naive": float(view.forecasts["seasonal_naive"][k]),
            "naive2": float(view.forecasts["naive2"][k]),
        }
        for k, t in enumerate(view.future_t)
    ]


__all__ = ["WindowView", "forecast_rows", "window_views"]
