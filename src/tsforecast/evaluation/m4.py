"""The M4 competition's accuracy measures and its Naive2 benchmark, for a panel of series.

Definitions follow the M4 organisers' benchmark code (Makridakis, Spiliotis and
Assimakopoulos, "The M4 Competition: 100,000 time series and 61 forecasting methods",
IJF 36, 2020; the R functions ``SeasonalityTest``, ``Benchmarks``, ``smape_cal`` and
``mase_cal`` of the Mcompetitions/M4-methods repository):

- sMAPE = 200 * mean(|y - f| / (|y| + |f|)) over the horizon (a 0/0 term counts as 0).
- MASE = mean(|y - f|) / mean(|x_t - x_{t-m}|) over the in-sample series x; m = 1 when x has
  no more than m values. A series whose scale is 0 (constant in-sample) has no MASE.
- Seasonality test (90 %): seasonal iff n >= 3m and
  |r_m| > 1.645 * sqrt((1 + 2 * sum_{k<m} r_k^2) / n), r_k the sample autocorrelation.
- Naive2: when the test says seasonal, classical multiplicative decomposition (centred
  moving average of order m, 2 x m when m is even; per-phase means of x / trend, normalised
  to mean 1: statsmodels' ``seasonal_decompose(model="multiplicative")``) gives the seasonal
  indices; the last seasonally adjusted value is carried forward and re-seasonalised with the
  indices repeated forward. A non-seasonal series (or m = 1) gets the plain naive forecast.
  Multiplicative indices need positive values, so a series with a value <= 0 is treated as
  non-seasonal (M4 had none).
- OWA = (mean sMAPE / mean sMAPE of Naive2 + mean MASE / mean MASE of Naive2) / 2: ratios of
  the averages over all series, not per-series ratios averaged.

Everything is numpy on ``(n_series, T)`` blocks: series of unequal lengths are grouped by
length (a panel has few distinct lengths), so no Python loop runs per series.
In-sample inputs: a 2-D array (one series per row), a 1-D array (one series) or a sequence
of 1-D arrays (any lengths). Actuals and forecasts: ``(n_series, horizon)`` (1-D: one series).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

Panel = np.ndarray | Sequence[np.ndarray] | Sequence[Sequence[float]]

T_CRIT_90 = 1.645  # one-sided 90 % normal quantile of M4's seasonality test


def _as_panel(insample: Panel) -> list[np.ndarray]:
    """The in-sample series as a list of 1-D float64 arrays, each with at least one value."""
    if isinstance(insample, np.ndarray) and insample.ndim == 1:
        insample = [insample]
    series = [np.asarray(x, dtype=np.float64) for x in insample]
    for i, x in enumerate(series):
        if x.ndim != 1 or x.size == 0:
            raise ValueError(
                f"in-sample series {i} has shape {x.shape}: each series must be a non-empty 1-D array"
            )
        if not np.isfinite(x).all():
            raise ValueError(
                f"in-sample series {i} holds NaN or inf at position {int(np.argmin(np.isfinite(x)))}: "
                "fill or drop missing values first"
            )
    return series


def _as_2d(values: np.ndarray | Sequence[Sequence[float]], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} has shape {arr.shape}: expected (n_series, horizon)")
    return arr


def _length_groups(series: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(row indices, stacked block (k, T)) for each distinct series length T."""
    lengths = np.array([x.size for x in series])
    groups = []
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        groups.append((idx, np.stack([series[i] for i in idx])))
    return groups


def _check_period(m: int) -> int:
    if isinstance(m, bool) or int(m) != m or m < 1:
        raise ValueError(f"seasonal period m={m!r} must be a positive integer (1: no seasonality)")
    return int(m)


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations r_0..r_max_lag of each row of ``x`` (n, T) -> (n, max_lag + 1).

    r_k = sum_t (x_t - mean)(x_{t+k} - mean) / sum_t (x_t - mean)^2 (R's ``acf``); NaN for a
    constant row.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    xc = x - x.mean(axis=1, keepdims=True)  # (n, T)
    denom = np.einsum("ij,ij->i", xc, xc)  # (n,)
    out = np.empty((x.shape[0], max_lag + 1))
    out[:, 0] = 1.0
    for k in range(1, max_lag + 1):
        out[:, k] = np.einsum("ij,ij->i", xc[:, k:], xc[:, :-k]) if k < x.shape[1] else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 1:] /= denom[:, None]
    out[denom == 0, :] = np.nan
    return out


def _seasonality_block(x: np.ndarray, m: int) -> np.ndarray:
    n_obs = x.shape[1]
    if m <= 1 or n_obs < 3 * m:
        return np.zeros(x.shape[0], dtype=bool)
    r = acf(x, m)  # (k, m + 1)
    limit = T_CRIT_90 * np.sqrt((1.0 + 2.0 * np.sum(r[:, 1:m] ** 2, axis=1)) / n_obs)
    with np.errstate(invalid="ignore"):
        return np.abs(r[:, m]) > limit  # NaN (constant series) compares False, as in M4


def seasonality_test(insample: Panel, m: int) -> np.ndarray:
    """M4's 90 % autocorrelation test at lag m, per series (bool array); False when n < 3m."""
    m = _check_period(m)
    series = _as_panel(insample)
    out = np.zeros(len(series), dtype=bool)
    for idx, block in _length_groups(series):
        out[idx] = _seasonality_block(block, m)
    return out


def _centred_moving_average(x: np.ndarray, m: int) -> np.ndarray:
    """Classical decomposition's trend: centred MA of order m (2 x m if m is even); NaN at ends."""
    n_obs = x.shape[1]
    csum = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    mean_m = (csum[:, m:] - csum[:, :-m]) / m  # (k, T - m + 1): mean of x[i : i + m]
    trend = np.full(x.shape, np.nan)
    half = m // 2
    if m % 2 == 0:
        trend[:, half : n_obs - half] = 0.5 * (mean_m[:, :-1] + mean_m[:, 1:])
    else:
        trend[:, half : n_obs - half] = mean_m
    return trend


def _indices_block(x: np.ndarray, m: int) -> np.ndarray:
    """Multiplicative seasonal indices (k, m); column p is the phase of x[:, p]."""
    n_obs = x.shape[1]
    ratio = x / _centred_moving_average(x, m)  # (k, T), NaN where the trend is undefined
    pad = (-n_obs) % m
    ratio = np.concatenate([ratio, np.full((x.shape[0], pad), np.nan)], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        si = np.nanmean(ratio.reshape(x.shape[0], -1, m), axis=1)  # (k, m)
        return si / si.mean(axis=1, keepdims=True)


def seasonal_indices(insample: Panel, m: int) -> np.ndarray:
    """Classical multiplicative seasonal indices, (n_series, m), each row with mean 1.

    Column p belongs to the phase of in-sample position p (so position t has index
    ``si[t % m]``). Needs at least two full cycles per series and positive values.
    """
    m = _check_period(m)
    series = _as_panel(insample)
    for i, x in enumerate(series):
        if x.size < 2 * m:
            raise ValueError(
                f"series {i} has {x.size} values: a decomposition with m={m} needs at least {2 * m}"
            )
        if (x <= 0).any():
            raise ValueError(
                f"series {i} has a value <= 0 ({x.min()}): multiplicative indices need positive values"
            )
    out = np.empty((len(series), m))
    for idx, block in _length_groups(series):
        out[idx] = _indices_block(block, m)
    return out


def _check_horizon(h: int) -> int:
    if isinstance(h, bool) or int(h) != h or h < 1:
        raise ValueError(f"horizon h={h!r} must be a positive integer")
    return int(h)


def naive_forecast(insample: Panel, h: int) -> np.ndarray:
    """The last in-sample value repeated: (n_series, h)."""
    h = _check_horizon(h)
    series = _as_panel(insample)
    last = np.array([x[-1] for x in series])
    return np.repeat(last[:, None], h, axis=1)


def seasonal_naive_forecast(insample: Panel, h: int, m: int) -> np.ndarray:
    """The last m in-sample values repeated forward: (n_series, h); naive when a series has < m values."""
    h, m = _check_horizon(h), _check_period(m)
    series = _as_panel(insample)
    out = np.empty((len(series), h))
    for idx, block in _length_groups(series):
        n_obs = block.shape[1]
        period = m if n_obs >= m else 1
        out[idx] = block[:, n_obs - period + np.arange(h) % period]
    return out


def _naive2(series: list[np.ndarray], h: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Naive2 forecasts (n, h) and whether each series was treated as seasonal (n,)."""
    out = np.empty((len(series), h))
    seasonal = np.zeros(len(series), dtype=bool)
    for idx, block in _length_groups(series):
        n_obs = block.shape[1]
        flags = _seasonality_block(block, m) & (block > 0).all(axis=1)
        si = np.ones((block.shape[0], max(m, 1)))
        if flags.any():
            si[flags] = _indices_block(block[flags], m)
        rows = np.arange(block.shape[0])[:, None]
        last_adjusted = block[:, -1] / si[:, (n_obs - 1) % si.shape[1]]  # (k,)
        out[idx] = last_adjusted[:, None] * si[rows, (n_obs + np.arange(h)) % si.shape[1]]
        seasonal[idx] = flags
    return out, seasonal


def naive2_forecast(insample: Panel, h: int, m: int) -> np.ndarray:
    """M4's Naive2: naive on the seasonally adjusted series, re-seasonalised; (n_series, h)."""
    h, m = _check_horizon(h), _check_period(m)
    return _naive2(_as_panel(insample), h, m)[0]


def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """M4's sMAPE (percent, 0..200) per series over the horizon: (n_series,)."""
    y, f = _as_2d(actual, "actual"), _as_2d(forecast, "forecast")
    if y.shape != f.shape:
        raise ValueError(f"actual has shape {y.shape} but forecast {f.shape}: they must match")
    num, den = np.abs(y - f), np.abs(y) + np.abs(f)
    terms = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return 200.0 * terms.mean(axis=1)


def mase_scale(insample: Panel, m: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast at lag m (lag 1 when a series has <= m values).

    NaN for a series of one value; 0 for a constant one (its MASE is undefined).
    """
    m = _check_period(m)
    series = _as_panel(insample)
    out = np.full(len(series), np.nan)
    for idx, block in _length_groups(series):
        lag = m if block.shape[1] > m else 1
        if block.shape[1] > lag:
            out[idx] = np.abs(block[:, lag:] - block[:, :-lag]).mean(axis=1)
    return out


def mase(actual: np.ndarray, forecast: np.ndarray, insample: Panel, m: int) -> np.ndarray:
    """M4's MASE per series: (n_series,); inf or NaN where the in-sample scale is 0."""
    y, f = _as_2d(actual, "actual"), _as_2d(forecast, "forecast")
    if y.shape != f.shape:
        raise ValueError(f"actual has shape {y.shape} but forecast {f.shape}: they must match")
    scale = mase_scale(insample, m)
    if scale.size != y.shape[0]:
        raise ValueError(f"{scale.size} in-sample series for {y.shape[0]} rows of actuals: they must match")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(y - f).mean(axis=1) / scale


def owa(smape_mean: float, mase_mean: float, smape_naive2: float, mase_naive2: float) -> float:
    """M4's Overall Weighted Average of the two relative errors; NaN if Naive2 is error-free."""
    if smape_naive2 <= 0 or mase_naive2 <= 0:
        return float("nan")
    return float(0.5 * (smape_mean / smape_naive2 + mase_mean / mase_naive2))


def _summary(smapes: np.ndarray, mases: np.ndarray, ref_smape: float, ref_mase: float) -> dict[str, float]:
    s, m = float(smapes.mean()), float(mases.mean())
    return {"smape": s, "mase": m, "owa": owa(s, m, ref_smape, ref_mase)}


def panel_scores(
    actuals: np.ndarray,
    forecasts: np.ndarray,
    insample: Panel,
    m: int,
    *,
    ids: Sequence[Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """sMAPE, MASE and OWA of ``forecasts`` with Naive2 and seasonal naive as baselines.

    ``actuals`` and ``forecasts``: (n_series, horizon); ``insample``: the n_series histories the
    forecasts start after. Returns the aggregate (plain floats, ready for JSON: ``smape``,
    ``mase``, ``owa``, counts and ``baselines.{naive2,seasonal_naive}.{smape,mase,owa}``) and
    one row per series (``id``, ``smape``, ``mase``, the baselines' values, ``seasonal``,
    ``mase_scale``). Series with a zero MASE scale are left out of every MASE average
    (``n_series_mase`` says how many count); sMAPE averages all series.
    """
    m = _check_period(m)
    series = _as_panel(insample)
    y, f = _as_2d(actuals, "actuals"), _as_2d(forecasts, "forecasts")
    if y.shape != f.shape:
        raise ValueError(f"actuals have shape {y.shape} but forecasts {f.shape}: they must match")
    if len(series) != y.shape[0]:
        raise ValueError(f"{len(series)} in-sample series for {y.shape[0]} rows of actuals: they must match")
    ids = list(range(len(series))) if ids is None else list(ids)
    if len(ids) != len(series):
        raise ValueError(f"{len(ids)} ids for {len(series)} series: give one id per series")
    for name, arr in (("actuals", y), ("forecasts", f)):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            named = [ids[i] for i in np.flatnonzero(bad)[:5]]
            raise ValueError(f"{name} hold NaN or inf for {int(bad.sum())} series (first: {named})")
    h = y.shape[1]
    naive2, seasonal = _naive2(series, h, m)
    snaive = seasonal_naive_forecast(series, h, m)
    scale = mase_scale(series, m)
    abs_err = {k: np.abs(y - v).mean(axis=1) for k, v in (("", f), ("naive2", naive2), ("snaive", snaive))}
    with np.errstate(invalid="ignore", divide="ignore"):
        per = pd.DataFrame(
            {
                "id": ids,
                "smape": smape(y, f),
                "mase": abs_err[""] / scale,
                "smape_naive2": smape(y, naive2),
                "mase_naive2": abs_err["naive2"] / scale,
                "smape_seasonal_naive": smape(y, snaive),
                "mase_seasonal_naive": abs_err["snaive"] / scale,
                "seasonal": seasonal,
                "mase_scale": scale,
            }
        )
    scored = np.isfinite(scale) & (scale > 0)  # series whose MASE is defined
    ref_smape = float(per["smape_naive2"].mean())
    ref_mase = float(per["mase_naive2"].to_numpy()[scored].mean()) if scored.any() else float("nan")

    def summary(smape_col: str, mase_col: str) -> dict[str, float]:
        mases = per[mase_col].to_numpy()[scored] if scored.any() else np.array([np.nan])
        return _summary(per[smape_col].to_numpy(), mases, ref_smape, ref_mase)

    model = summary("smape", "mase")
    aggregate: dict[str, Any] = {
        **model,
        "n_series": len(series),
        "n_series_mase": int(scored.sum()),
        "n_seasonal": int(seasonal.sum()),
        "seasonal_period": m,
        "horizon": h,
        "baselines": {
            "naive2": summary("smape_naive2", "mase_naive2"),
            "seasonal_naive": summary("smape_seasonal_naive", "mase_seasonal_naive"),
        },
    }
    return aggregate, per
