"""The naive baselines, forecast from any window's origin of any series, vectorised over windows.

From a window's origin ``o`` (its last input row), H steps ahead:

* ``repeat_last``: the value at ``o`` (M4's Naive1);
* ``seasonal_naive``: the value one season (``m``) earlier, ``x[o + h - m * ceil(h / m)]``
  (naive when the history before the origin is shorter than ``m``); with ``m`` at most the
  input size it reads only the window's own inputs;
* ``naive2``: M4's Naive2 (:mod:`tsforecast.evaluation.m4`): the seasonality test and the
  classical multiplicative indices are fitted on the series' *in-sample* rows (every row before
  its test part); the value at ``o`` is seasonally adjusted and re-seasonalised forward. With one
  window per series whose origin is the last in-sample row (the M4 protocol) every baseline is
  exactly :func:`tsforecast.evaluation.m4.panel_scores`'.
"""

from __future__ import annotations

import numpy as np

from tsforecast.dataset.panel import Panel
from tsforecast.errors import ConfigError
from tsforecast.evaluation import m4


def check_period(period: int, input_size: int) -> None:
    """The seasonal-naive baseline may only look inside the input window: ``period <= input_size``."""
    if period > input_size:
        raise ConfigError(
            f"evaluate.seasonal_period={period} exceeds window.input_size={input_size}; the seasonal-naive "
            "baseline may only look inside the input window - raise input_size or lower the period"
        )


def naive2_parts(insample: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per series: seasonal (S,) and multiplicative indices (S, m) (ones when not seasonal), via m4.

    ``m = 1``: no series is seasonal and the indices are (S, 1) ones (Naive2 is naive).
    """
    if m <= 1:
        return np.zeros(len(insample), dtype=bool), np.ones((len(insample), 1))
    seasonal = m4.seasonality_test(insample, m) & np.array([(x > 0).all() for x in insample], dtype=bool)
    si = np.ones((len(insample), m))
    if seasonal.any():
        si[seasonal] = m4.seasonal_indices([insample[i] for i in np.flatnonzero(seasonal)], m)
    return seasonal, si


def baseline_forecasts(
    panel: Panel, s: np.ndarray, origin: np.ndarray, si: np.ndarray, m: int
) -> dict[str, np.ndarray]:
    """Data-unit forecasts (K, H) of every baseline from local ``origin`` rows (K,) of series ``s``.

    ``si``: each series' Naive2 indices (S, m) from :func:`naive2_parts`.
    """
    H = panel.horizon
    target = panel.values[:, 0]  # a view (memory-mapped or not): only the rows read are copied
    base = panel.offsets[s]  # (K,)
    h = np.arange(1, H + 1)
    last = target[base + origin].astype(np.float64)  # (K,)
    back = origin[:, None] + h[None, :] - m * np.ceil(h / m).astype(np.int64)[None, :]  # (K, H)
    back = np.where(origin[:, None] + 1 >= m, back, origin[:, None])  # < m rows of history: naive
    phase = si.shape[1]
    rows = np.arange(len(s))[:, None]
    si_s = si[s]  # (K, m)
    adjusted = last / si_s[rows[:, 0], origin % phase]
    return {
        "repeat_last": np.repeat(last[:, None], H, axis=1),
        "seasonal_naive": target[base[:, None] + back].astype(np.float64),
        "naive2": adjusted[:, None] * si_s[rows, (origin[:, None] + h[None, :]) % phase],
    }


__all__ = ["baseline_forecasts", "check_period", "naive2_parts"]
