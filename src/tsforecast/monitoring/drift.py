"""Drift: the newest rows of each series against the rows the model was trained on (pure).

Each series' train rows give its seasonal profile ``p`` (the mean train value at each phase of
``evaluate.seasonal_period``: the daily and weekly cycle) and its train-fit ``std`` (the scale
the model's inputs are standardised by). The newest ``window`` rows (default one season) are
compared with the profile at their own phases, so a window need not be a whole season:

* **level** ``mean(y - p) / std``: the newest rows sit above or below the cycle they should follow
  (a standardised, seasonally adjusted mean shift);
* **scale** ``log(std(y) / sqrt(var(p) + noise))``: the newest rows swing more or less than the
  train rows did at the same phases (``noise``: the train rows' mean squared gap to ``p``);
* **profile** ``RMS(y - p - mean(y - p)) / std``: the shape of the cycle changed, whatever the level.

Why these and not a two-sample test (KS, PSI) of the values: neighbouring rows of a time series
are strongly dependent, so such tests are wildly over-confident, and a window that is not a
whole season differs from the whole training set by its seasonal phase alone. Comparing the
newest rows with the training rows' own cycle measures what the model relies on, in the units
its inputs are scaled by, and each number says which kind of change happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import Tick

STATS = ("level", "scale", "profile")


@dataclass(frozen=True)
class Reference:
    """The training rows of every series: raw target values, flat, with per-series offsets."""

    ids: pd.Index  # (S,) as strings
    values: np.ndarray  # (rows,) float64: the train rows' target, series after series
    offsets: np.ndarray  # (S+1,) int64
    first: np.ndarray  # (S,) datetime64[ns] UTC-naive: each series' first timestamp (phase 0)
    start: np.ndarray  # (S,) int64: the first train row's position in its series
    mean: np.ndarray  # (S,) the train-fit scaler of the target
    std: np.ndarray  # (S,)
    freq: str


@dataclass(frozen=True)
class Thresholds:
    """When a statistic counts as drift (absolute values for level and scale)."""

    level: float
    scale: float
    profile: float


def reference_from_panel(panel: object) -> Reference:
    """The train rows of a :class:`~tsforecast.dataset.panel.Panel` (data/prepared/)."""
    p = panel  # duck-typed: offsets, bounds, values, ids, first, mean, std, freq
    train = p.bounds[:, 0, :]  # type: ignore[attr-defined]  # (S, 2) local [start, end)
    lengths = (train[:, 1] - train[:, 0]).astype(np.int64)
    starts = p.offsets[:-1] + train[:, 0]  # type: ignore[attr-defined]
    rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(
        lengths.sum()
    )
    return Reference(
        ids=pd.Index([str(i) for i in p.ids], dtype=object),  # type: ignore[attr-defined]
        values=np.asarray(p.values[rows, 0], dtype=np.float64),  # type: ignore[attr-defined]
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        first=np.asarray(p.first, dtype="datetime64[ns]"),  # type: ignore[attr-defined]
        start=train[:, 0].astype(np.int64),
        mean=np.asarray(p.mean[:, 0], dtype=np.float64),  # type: ignore[attr-defined]
        std=np.asarray(p.std[:, 0], dtype=np.float64),  # type: ignore[attr-defined]
        freq=str(p.freq),  # type: ignore[attr-defined]
    )


def _utc_naive(ts: pd.Series) -> np.ndarray:
    values = pd.to_datetime(ts)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ns]")


def steps_since(ts: np.ndarray, first: np.ndarray, freq: str) -> np.ndarray:
    """Whole ``freq`` steps from ``first`` to ``ts`` (element-wise; -1 where off the grid)."""
    offset = to_offset(freq)
    if isinstance(offset, Tick):
        delta = (ts - first).astype("timedelta64[ns]").astype(np.int64)
        step = offset.nanos
        return np.where(delta % step == 0, delta // step, -1)
    out = np.full(len(ts), -1, dtype=np.int64)
    for f in np.unique(first):
        sel = first == f
        grid = pd.date_range(pd.Timestamp(f), pd.Timestamp(ts[sel].max()), freq=offset)
        out[sel] = grid.get_indexer(pd.DatetimeIndex(ts[sel]))
    return out


def _profiles(ref: Reference, period: int) -> tuple[np.ndarray, np.ndarray]:
    """(S, period) mean train value at each phase (NaN where a series has less than a season), and
    (S,) the train rows' mean squared residual from that profile (their noise around the cycle)."""
    lengths = np.diff(ref.offsets)
    s = np.repeat(np.arange(len(lengths)), lengths)
    phase = np.arange(len(ref.values)) - np.repeat(ref.offsets[:-1] - ref.start, lengths)
    phase %= period
    sums = np.zeros((len(lengths), period))
    counts = np.zeros((len(lengths), period))
    np.add.at(sums, (s, phase), ref.values)
    np.add.at(counts, (s, phase), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = sums / counts
    prof[lengths < period] = np.nan
    noise = np.zeros(len(lengths))
    np.add.at(noise, s, (ref.values - prof[s, phase]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = noise / lengths
    return prof, noise


def _per_series(g: pd.DataFrame) -> pd.DataFrame:
    """Per series (``s``): rows, mean and variance of ``y``, of the residual ``r = y - p`` and of ``p``."""
    g = g.assign(r=g["y"] - g["p"])
    agg = g.groupby("s").agg(n=("y", "size"), y_mean=("y", "mean"), r_mean=("r", "mean"),
                             p_missing=("p", lambda v: v.isna().any()))  # fmt: skip
    for col in ("y", "r", "p"):
        centred = g[col] - g.groupby("s")[col].transform("mean")
        agg[f"{col}_var"] = (centred**2).groupby(g["s"]).mean()
    return agg


def drift_table(
    newest: pd.DataFrame, idc: str, target: str, ref: Reference, window: int, period: int, limits: Thresholds
) -> pd.DataFrame:
    """One row per series of the reference: ``n_newest``, the three statistics, and ``drifted``
    (the statistics past their threshold, comma-separated; empty: none).

    With a train profile (a season of train rows or more) the statistics are phase-adjusted, so
    any window works: level = mean(y - p) / std, profile = RMS of the demeaned y - p / std, scale =
    log of the newest rows' spread over the spread the train rows had at those phases. Without
    one: level = (mean(y) - mean(train)) / std, scale = log(std(y) / std), no profile.
    """
    frame = newest[[idc, "timestamp", target]].copy()
    frame[idc] = frame[idc].astype(str)
    frame = frame[frame[idc].isin(set(ref.ids))]
    frame = frame.sort_values([idc, "timestamp"], kind="stable").groupby(idc, sort=False).tail(window)
    s = ref.ids.get_indexer(frame[idc])
    phase = steps_since(_utc_naive(frame["timestamp"]), ref.first[s], ref.freq)
    prof, noise = _profiles(ref, period)
    p = np.where(phase >= 0, prof[s, np.maximum(phase, 0) % period], np.nan)
    agg = _per_series(pd.DataFrame({"s": s, "y": frame[target].to_numpy(dtype=np.float64), "p": p}))
    idx = agg.index.to_numpy()
    std, has_p = ref.std[idx], ~agg["p_missing"].to_numpy(dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(has_p, agg["r_mean"], agg["y_mean"] - ref.mean[idx]) / std
        expected_var = np.where(has_p, agg["p_var"] + noise[idx], std**2)
        scale = 0.5 * np.log(agg["y_var"].to_numpy() / expected_var)
        profile = np.where(has_p, np.sqrt(agg["r_var"].to_numpy()) / std, np.nan)
    out = pd.DataFrame({idc: ref.ids, "n_newest": 0, "level": np.nan, "scale": np.nan, "profile": np.nan})
    out.loc[idx, "n_newest"] = agg["n"].to_numpy()
    out.loc[idx, "level"], out.loc[idx, "scale"], out.loc[idx, "profile"] = level, scale, profile
    out.loc[out["n_newest"] < 2, list(STATS)] = np.nan
    over = {
        "level": out["level"].abs() > limits.level,
        "scale": out["scale"].abs() > limits.scale,
        "profile": out["profile"] > limits.profile,
    }
    out["drifted"] = [",".join(k for k in STATS if over[k].iloc[i]) for i in range(len(out))]
    return out


def summarize(table: pd.DataFrame, idc: str, limits: Thresholds, share: float, max_named: int = 20) -> dict:
    """The drift part of monitor.json: the largest statistic of each kind, the share of drifted
    series, whether that passes ``share``, and the drifted series (the first ``max_named``)."""
    scored = table[table["n_newest"] >= 2]
    drifted = scored[scored["drifted"] != ""]
    frac = len(drifted) / len(scored) if len(scored) else 0.0
    largest = {}
    for k in STATS:
        col = scored[k].abs() if k != "profile" else scored[k]
        largest[k] = float(scored.loc[col.idxmax(), k]) if col.notna().any() else None
    return {
        "statistics": {
            "level": "(mean(newest) - mean(train)) / std(train)",
            "scale": "log(std(newest) / std(train))",
            "profile": "RMS of the demeaned seasonal-profile gap / std(train)",
        },  # fmt: skip
        "thresholds": {
            "level": limits.level,
            "scale": limits.scale,
            "profile": limits.profile,
            "share": share,
        },
        "n_series": int(len(scored)),
        "largest": largest,
        "n_drifted": int(len(drifted)),
        "share_drifted": frac,
        "drifted": bool(len(drifted) > 0 and frac > share),
        "series": [
            {idc: str(r[idc]), "drifted": r["drifted"], **{k: _num(r[k]) for k in STATS}}
            for _, r in drifted.head(max_named).iterrows()
        ],
    }


def _num(value: object) -> float | None:
    x = float(value)  # type: ignore[arg-type]
    return x if np.isfinite(x) else None


__all__ = [
    "STATS",
    "Reference",
    "Thresholds",
    "drift_table",
    "reference_from_panel",
    "steps_since",
    "summarize",
]
