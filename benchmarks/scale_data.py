"""Synthetic many-series panels for the scale benchmark: M4-hourly-like, any number of series.

Each series i (t = 0 .. length-1 steps, all series on one grid from ``start``) is

    value[i, t] = level_i * (1 + trend_i * t / (length - 1))
                  * (1 + daily_amp_i  * sin(2 pi t / steps_per_day  + daily_phase_i))
                  * (1 + weekly_amp_i * sin(2 pi t / steps_per_week + weekly_phase_i))
                  * exp(noise[i, t])

with, drawn once per series from ``numpy.random.default_rng(seed)``:

- level_i ~ exp(N(log 100, 1)): magnitudes from about 10 to 1,000 (as M4's vary);
- trend_i ~ U(-0.3, 0.3): the total relative drift over the series;
- daily_amp_i ~ U(0.05, 0.5), weekly_amp_i ~ U(0, 0.3), phases ~ U(0, 2 pi); a cycle shorter
  than two steps (e.g. daily at ``freq="D"``) is left out;
- noise: AR(1) on the log scale, phi_i ~ U(0, 0.8), marginal sd sigma_i ~ U(0.02, 0.1).

Every factor is positive, so every value is (Naive2's multiplicative decomposition applies).

Varying lengths (``min_length``): series i keeps only its last ``length_i`` steps, ``length_i``
drawn uniformly from ``min_length .. length`` (a stream of its own, so the values of the kept
steps do not change): the series start at different times and all end at the last grid step,
as products or meters that joined later do.
Memory: float32 throughout, built as one (length, n_series) block with numpy (the AR(1)
recursion loops over time, vectorised across series); ids are categorical. 10,000 x 1,000 is
10 M rows: about 40 MB of values, 80 MB of timestamps, 20 MB of id codes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PANEL_START = pd.Timestamp("2000-01-01 00:00")


def _steps_per(freq: str, span: str) -> float:
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"freq {freq!r} is not a fixed time step - use one like 'h', '30min' or 'D'"
        ) from exc
    return pd.Timedelta(span) / step


def synthetic_params(n_series: int, seed: int = 0) -> pd.DataFrame:
    """The per-series parameters :func:`synthetic_panel` draws (one row per series, float64)."""
    if isinstance(n_series, bool) or int(n_series) != n_series or n_series < 1:
        raise ValueError(f"n_series={n_series!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    n = int(n_series)
    return pd.DataFrame(
        {
            "level": np.exp(rng.normal(np.log(100.0), 1.0, n)),
            "trend": rng.uniform(-0.3, 0.3, n),
            "daily_amp": rng.uniform(0.05, 0.5, n),
            "daily_phase": rng.uniform(0.0, 2 * np.pi, n),
            "weekly_amp": rng.uniform(0.0, 0.3, n),
            "weekly_phase": rng.uniform(0.0, 2 * np.pi, n),
            "phi": rng.uniform(0.0, 0.8, n),
            "sigma": rng.uniform(0.02, 0.1, n),
        }
    )


def _cycle(t: np.ndarray, period: float, amp: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """1 + amp * sin(2 pi t / period + phase): (length, n) float32; ones when period < 2 steps."""
    if period < 2:
        return np.ones((t.size, amp.size), dtype=np.float32)
    angle = (2 * np.pi / period) * t[:, None] + phase[None, :]  # (length, n)
    np.sin(angle, out=angle)
    angle *= amp[None, :]
    angle += 1.0
    return angle


def synthetic_values(n_series: int, length: int = 1000, freq: str = "h", seed: int = 0) -> np.ndarray:
    """The panel's values as a (n_series, length) float32 array (see the module docstring)."""
    if isinstance(length, bool) or int(length) != length or length < 2:
        raise ValueError(f"length={length!r} must be an integer of at least 2")
    p = synthetic_params(n_series, seed)
    per_day, per_week = _steps_per(freq, "1D"), _steps_per(freq, "7D")
    f32 = {k: p[k].to_numpy(np.float32) for k in p.columns}
    t = np.arange(length, dtype=np.float32)
    rng = np.random.default_rng([seed, 1])  # the noise stream, apart from the parameters'
    noise = rng.standard_normal((length, f32["phi"].size), dtype=np.float32)  # (length, n)
    noise *= f32["sigma"] * np.sqrt(1 - f32["phi"] ** 2)
    noise[0] /= np.sqrt(1 - f32["phi"] ** 2)  # start in the stationary distribution
    for step in range(1, length):  # AR(1): contiguous rows, vectorised across series
        noise[step] += f32["phi"] * noise[step - 1]
    np.exp(noise, out=noise)
    noise *= f32["level"] * (1 + f32["trend"] * (t[:, None] / (length - 1)))
    noise *= _cycle(t, per_day, f32["daily_amp"], f32["daily_phase"])
    noise *= _cycle(t, per_week, f32["weekly_amp"], f32["weekly_phase"])
    return np.ascontiguousarray(noise.T)  # (n, length)


def synthetic_panel(
    n_series: int,
    length: int = 1000,
    freq: str = "h",
    seed: int = 0,
    *,
    id_column: str = "unique_id",
    timestamp_column: str = "timestamp",
    target: str = "value",
    min_length: int | None = None,
) -> pd.DataFrame:
    """A long frame of ``n_series`` x ``length`` rows: ids ``S0`` .. (categorical), timestamps, float32 values.

    All series share the grid ``PANEL_START`` + k * ``freq``; rows are ordered by series, then time.
    ``min_length``: each series keeps its last ``min_length .. length`` steps (drawn per series;
    see the module docstring); None: every series has ``length`` steps. The same arguments
    give the same frame.
    """
    values = synthetic_values(n_series, length, freq, seed)  # (n, length)
    n = values.shape[0]
    grid = pd.date_range(PANEL_START, periods=length, freq=freq).to_numpy()
    kind = np.min_scalar_type(max(n - 1, 0))
    if min_length is None:
        codes = np.repeat(np.arange(n, dtype=kind), length)
        stamps, flat = np.tile(grid, n), values.reshape(-1)
    else:
        lengths = series_lengths(n, length, min_length, seed)
        keep = np.arange(length)[None, :] >= (length - lengths)[:, None]  # (n, length): the last steps
        codes = np.repeat(np.arange(n, dtype=kind), lengths)
        stamps, flat = np.broadcast_to(grid, values.shape)[keep], values[keep]
    ids = pd.Categorical.from_codes(codes, categories=pd.Index([f"S{i}" for i in range(n)]))
    return pd.DataFrame({id_column: ids, timestamp_column: stamps, target: flat}, copy=False)


def series_lengths(n_series: int, length: int, min_length: int, seed: int = 0) -> np.ndarray:
    """Per-series lengths drawn uniformly from ``min_length .. length`` (int64, reproducible)."""
    if isinstance(min_length, bool) or int(min_length) != min_length or not 2 <= min_length <= length:
        raise ValueError(f"min_length={min_length!r} must be an integer from 2 to length={length}")
    return np.random.default_rng([seed, 2]).integers(int(min_length), int(length), n_series, endpoint=True)
