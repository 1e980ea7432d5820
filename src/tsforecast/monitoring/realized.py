"""Realized accuracy: each archived forecast scored against the rows that have arrived since (pure).

Per archive file and series: the steps observed so far (a forecast is scored as soon as part
of its horizon has arrived, and again as more arrives), MAE and MSE in the data's units,
``mse_scaled`` on the model's own train-fit scale (``train_std`` in the archive: the scale its
test and backtest ``mse_scaled`` were measured on), MASE (scaled by the in-sample seasonal-naive
MAE of the series' rows up to the origin, Hyndman & Koehler) and the coverage of each
interval level. Per origin the series are pooled: every (series, step) counts once, so
``mse_scaled`` and coverage are pooled exactly as the evaluate stage pools a panel, MAE is the
mean absolute error over every observed point, MASE the step-weighted mean of the series'.

When the same origin was delivered twice by the same model version, the latest delivery is
the one scored. Everything here is sums over points, so pooling over series and origins is exact.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsforecast.monitoring.types import DELIVERED_AT, FILE, MODEL_VERSION, ORIGIN, TRAIN_STD

ACTUAL = "actual"
SUMS = ("n", "sae", "sse", "sse_scaled", "mase_weighted", "horizon")


def levels_of(columns: pd.Index | list[str]) -> list[str]:
    """The interval levels in an archive's columns (``lo_80`` + ``hi_80`` -> ``"80"``), ascending."""
    names = [str(c)[3:] for c in columns if str(c).startswith("lo_") and f"hi_{str(c)[3:]}" in columns]
    return sorted(set(names), key=float)


def latest_deliveries(archive: pd.DataFrame) -> pd.DataFrame:
    """The archive without repeated deliveries: per (origin, model_version) only the latest file."""
    if archive.empty:
        return archive
    files = archive.groupby(FILE, sort=False).agg(
        origin=(ORIGIN, "max"), model=(MODEL_VERSION, "first"), at=(DELIVERED_AT, "max")
    )
    files = files.sort_values(["at"], na_position="first", kind="stable")
    keep = files.reset_index().drop_duplicates(["origin", "model"], keep="last")[FILE]
    return archive[archive[FILE].isin(set(keep))]


def mase_scales(actuals: pd.DataFrame, idc: str, keys: pd.DataFrame, period: int) -> np.ndarray:
    """The in-sample seasonal-naive MAE (lag ``period``, lag 1 for a series of ``period`` rows or
    fewer) of each ``keys`` row's series over its rows up to and including its ``origin``."""
    out = np.full(len(keys), np.nan)
    by_series = {sid: grp for sid, grp in actuals.groupby(idc, sort=False)}
    for sid, idx in keys.groupby(idc, sort=False).indices.items():
        grp = by_series.get(sid)
        if grp is None:
            continue
        ts = grp["timestamp"].to_numpy()
        y = grp[ACTUAL].to_numpy(dtype=np.float64)
        lag = period if len(y) > period else 1
        d = np.abs(y[lag:] - y[:-lag])  # d[j] is the error at row j + lag
        cum = np.concatenate([[0.0], np.cumsum(d)])
        k = np.searchsorted(ts, keys[ORIGIN].to_numpy()[idx], side="right") - 1  # the origin's row
        count = k - lag + 1  # diffs at rows lag..k
        ok = count > 0
        scale = np.full(len(idx), np.nan)
        scale[ok] = cum[count[ok]] / count[ok]
        out[idx] = scale
    return out


def score_points(archive: pd.DataFrame, actuals: pd.DataFrame, idc: str) -> pd.DataFrame:
    """The archive's rows joined with the actuals (NaN: not arrived yet), with the errors."""
    points = archive.merge(actuals[[idc, "timestamp", ACTUAL]], on=[idc, "timestamp"], how="left")
    err = points[ACTUAL].to_numpy(dtype=np.float64) - points["forecast"].to_numpy(dtype=np.float64)
    std = points[TRAIN_STD].to_numpy(dtype=np.float64)
    return points.assign(err=err, err_scaled=err / std)


def series_table(points: pd.DataFrame, actuals: pd.DataFrame, idc: str, period: int) -> pd.DataFrame:
    """One row per (archive file, series): origin, model_version, delivered_at, sums of the errors,
    and the metrics (``steps_observed``, ``mae``, ``mse``, ``mse_scaled``, ``mase``, ``coverage_<l>``)."""
    levels = levels_of(points.columns)
    seen = points[ACTUAL].notna()
    pts = points.assign(
        n=seen.astype(np.int64),
        sae=np.where(seen, np.abs(points["err"]), 0.0),
        sse=np.where(seen, points["err"] ** 2, 0.0),
        sse_scaled=np.where(seen, points["err_scaled"] ** 2, 0.0),
        horizon=1,
        **{
            f"in_{lv}": (
                seen & (points[f"lo_{lv}"] <= points[ACTUAL]) & (points[ACTUAL] <= points[f"hi_{lv}"])
            )
            .astype(np.int64)
            .to_numpy()
            for lv in levels
        },
    )
    sums = ["n", "sae", "sse", "sse_scaled", "horizon", *[f"in_{lv}" for lv in levels]]
    table = pts.groupby([FILE, idc], sort=False).agg(
        **{c: (c, "sum") for c in sums},
        **{
            ORIGIN: (ORIGIN, "max"),
            MODEL_VERSION: (MODEL_VERSION, "first"),
            DELIVERED_AT: (DELIVERED_AT, "max"),
        },
    )
    table = table.reset_index()
    n = table["n"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["steps_observed"] = table["n"]
        table["mae"] = table["sae"] / n
        table["mse"] = table["sse"] / n
        table["mse_scaled"] = table["sse_scaled"] / n
        table["mase"] = table["mae"] / mase_scales(actuals, idc, table[[idc, ORIGIN]], period)
        for lv in levels:
            table[f"coverage_{lv}"] = table[f"in_{lv}"] / n
    table["mase_weighted"] = np.where(np.isfinite(table["mase"]), table["mase"] * n, 0.0)
    table["n_mase"] = np.where(np.isfinite(table["mase"]), n, 0.0)
    return table


def by_origin(table: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Pool the series of each archive file: one row per delivery with at least one step observed,
    oldest origin first, with the sums kept (pooling several origins stays exact)."""
    scored = table[table["n"] > 0]
    if scored.empty:
        return pd.DataFrame(columns=[FILE, ORIGIN, MODEL_VERSION, "steps_observed", "mae", "mse_scaled"])
    ins = [f"in_{lv}" for lv in levels]
    pooled = scored.groupby(FILE, sort=False).agg(
        **{c: (c, "sum") for c in ("n", "sae", "sse", "sse_scaled", "mase_weighted", "n_mase", *ins)},
        **{
            ORIGIN: (ORIGIN, "max"),
            MODEL_VERSION: (MODEL_VERSION, "first"),
            DELIVERED_AT: (DELIVERED_AT, "max"),
        },
        n_series=(FILE, "size"),
    )
    horizon = table.groupby(FILE, sort=False)["horizon"].sum()
    pooled = pooled.join(horizon).reset_index()
    n = pooled["n"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled["steps_observed"] = pooled["n"]
        pooled["complete"] = pooled["n"] == pooled["horizon"]
        pooled["mae"] = pooled["sae"] / n
        pooled["mse"] = pooled["sse"] / n
        pooled["mse_scaled"] = pooled["sse_scaled"] / n
        pooled["mase"] = pooled["mase_weighted"] / pooled["n_mase"].to_numpy(dtype=np.float64)
        for lv in levels:
            pooled[f"coverage_{lv}"] = pooled[f"in_{lv}"] / n
    return pooled.sort_values([ORIGIN, DELIVERED_AT], kind="stable").reset_index(drop=True)


def rolling_pooled(rows: pd.DataFrame, recent: int) -> np.ndarray:
    """For each origin of ``rows`` (one model's deliveries, oldest first): ``mse_scaled`` pooled
    over it and the ``recent - 1`` origins before it (every observed point counts once)."""
    sse = rows["sse_scaled"].to_numpy(dtype=np.float64)
    n = rows["n"].to_numpy(dtype=np.float64)
    cs, cn = np.concatenate([[0.0], np.cumsum(sse)]), np.concatenate([[0.0], np.cumsum(n)])
    hi = np.arange(1, len(rows) + 1)
    lo = np.maximum(hi - recent, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cs[hi] - cs[lo]) / (cn[hi] - cn[lo])


def score(
    archive: pd.DataFrame, actuals: pd.DataFrame, idc: str, period: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per file and series, per file pooled): the realized accuracy of every archived forecast."""
    latest = latest_deliveries(archive)
    points = score_points(latest, actuals, idc)
    table = series_table(points, actuals, idc, period)
    return table, by_origin(table, levels_of(points.columns))


__all__ = [
    "ACTUAL",
    "by_origin",
    "latest_deliveries",
    "levels_of",
    "mase_scales",
    "rolling_pooled",
    "score",
    "score_points",
    "series_table",
]
