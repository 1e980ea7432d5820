"""Forecast many series with one global model: each series' next H steps, intervals, vectorised.

A history is a long frame: the model's id column, timestamp column, target and covariates;
each series needs at least ``input_size`` rows at the model's frequency (its last
``input_size`` are used). Every series must be one the model was trained on: it is scaled
with its own train-row scaler stored in the model file (``extra["series_scalers"]``); unknown
ids fail in one error naming them. The forecast is a long frame ``[id, timestamp, forecast,
lo_<l>, hi_<l>...]``, series in the order they first appear in the history, H rows each.

The work is vectorised: the last windows of all series are cut with one fancy index, and
the network, the scaling and the interval bounds run on chunks of series through
:func:`tsforecast.parallel.map_series` (in-process, a local Dask cluster, or the scheduler at
``orchestration.dask_address``); each chunk carries the weights and its own arrays, never a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from pandas.tseries.frequencies import to_offset

from tsforecast.errors import DataError, ModelLoadError
from tsforecast.evaluation.intervals import Calibration, level_name, serving_levels
from tsforecast.parallel import chunk_ranges, map_series
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster

# One series' forecast at L=336, hidden 64, 2 layers took ~2.5 ms on this project's 2-core machine
# (the recurrence over L steps dominates): chunks of ~2,000 series, each a few seconds of work,
# keep the per-task overhead of Dask negligible and the network's batches large.
SECONDS_PER_SERIES = 2e-3
CHUNK_TARGET_S = 4.0
PREDICT_BATCH = 2048  # windows per forward pass (activations ~ PREDICT_BATCH * L * hidden floats)
SHOWN_IDS = 10  # ids named in an error before "and N more"


@dataclass(frozen=True)
class PanelSpec:
    """What a panel history must hold for one global model, read from the model file's ``extra``."""

    id_column: str
    timestamp_column: str
    columns: tuple[str, ...]  # target first, then covariates
    freq: str
    input_size: int
    horizon: int
    ids: pd.Index  # the model's series, in training order
    mean: np.ndarray  # (S, C) per-series train-row scaler
    std: np.ndarray  # (S, C)

    @classmethod
    def from_model(cls, model: LSTMForecaster, extra: dict[str, Any]) -> PanelSpec:
        needed = ("id_column", "series_scalers", "columns", "freq", "timestamp_column")
        missing = [k for k in needed if k not in extra]
        if missing:
            raise ModelLoadError(
                f"the model file lacks {missing} in its metadata; it is not a panel model written by "
                "`tsforecast train` on data with data.id_column"
            )
        sc = extra["series_scalers"]
        mean = np.asarray(sc["mean"], dtype=np.float64)
        std = np.asarray(sc["std"], dtype=np.float64)
        columns = tuple(str(c) for c in extra["columns"])
        if mean.shape != (len(sc["ids"]), len(columns)) or std.shape != mean.shape:
            raise ModelLoadError(
                f"the model's series_scalers hold mean {mean.shape} and std {std.shape} for "
                f"{len(sc['ids'])} series and columns {list(columns)}; the model file is damaged"
            )
        return cls(
            id_column=str(extra["id_column"]),
            timestamp_column=str(extra["timestamp_column"]),
            columns=columns,
            freq=str(extra["freq"]),
            input_size=model.args.input_size,
            horizon=model.args.horizon,
            ids=pd.Index(list(sc["ids"]), dtype=object),
            mean=mean,
            std=std,
        )

    @property
    def needed(self) -> list[str]:
        return [self.id_column, self.timestamp_column, *self.columns]

    def rows_of(self, ids: pd.Index, source: str) -> np.ndarray:
        """Each of ``ids``' row in the model's scalers; unknown ids fail, all named in one error."""
        pos = self.ids.get_indexer(pd.Index(np.asarray(ids, dtype=object), dtype=object))
        if (pos < 0).any():
            raise DataError(
                f"{source}: {int((pos < 0).sum())} series are not among the model's {len(self.ids)} "
                f"known series: {_names(ids[pos < 0])}; a global model forecasts only the series it was "
                "trained on (retrain with them, e.g. `dvc repro`)"
            )
        return pos


def _names(ids: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in list(ids)[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class ForecastChunk:
    """One task of :func:`forecast_chunk`: the weights and a chunk of series' raw last windows."""

    args: dict[str, Any]  # the model's constructor arguments
    weights: dict[str, np.ndarray]
    x: np.ndarray  # (n, L, C) raw inputs
    mean: np.ndarray  # (n, C)
    std: np.ndarray  # (n, C)
    calibration: Calibration
    levels: tuple[float, ...]


def forecast_chunk(chunk: ForecastChunk) -> dict[str, np.ndarray]:
    """Point forecast and interval bounds (n, H) each, in the data's units (pure, any process)."""
    model = LSTMForecaster.from_args(chunk.args)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in chunk.weights.items()})
    model.eval()
    scaled = ((chunk.x - chunk.mean[:, None, :]) / chunk.std[:, None, :]).astype(np.float32)  # (n, L, C)
    point = predict_windows(model, scaled, PREDICT_BATCH)  # (n, H) scaled
    mu, sd = chunk.mean[:, :1], chunk.std[:, :1]  # (n, 1): the target's scaler
    out = {"forecast": point * sd + mu}
    for level in chunk.levels:
        lo, hi = chunk.calibration.bounds(point, level)
        out[f"lo_{level_name(level)}"] = lo * sd + mu
        out[f"hi_{level_name(level)}"] = hi * sd + mu
    return out


def future_grid(last: pd.DatetimeIndex, freq: str, horizon: int) -> pd.DatetimeIndex:
    """(S * H,) timestamps: the ``horizon`` steps after each of ``last``, series after series."""
    codes, uniques = pd.factorize(last)
    offset = to_offset(freq)
    table = np.stack(
        [pd.date_range(u, periods=horizon + 1, freq=offset)[1:].as_unit("ns").asi8 for u in uniques]
    )  # (U, H) int64 ns (UTC instants when tz-aware)
    flat = pd.DatetimeIndex(table[codes].ravel())
    return flat.tz_localize("UTC").tz_convert(last.tz) if last.tz is not None else flat


def last_windows(
    frame: pd.DataFrame, spec: PanelSpec, source: str = "model input"
) -> tuple[pd.Index, np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Series ids (first-appearance order), their rows in the model's scalers (S,), each one's
    last timestamp (S,) and last windows (S, L, C).

    Fails naming every offending series: missing columns or ids, series the model does not know,
    duplicate timestamps, too few rows,
    missing or non-numeric values in the used rows, or used rows off the model's frequency.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a table (pandas DataFrame) with columns {spec.needed}")
    missing = [c for c in spec.needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {[str(c) for c in frame.columns]}. "
            f"The panel model needs {spec.needed}"
        )
    if frame.empty:
        raise DataError(f"{source}: no rows; send at least input_size={spec.input_size} rows per series")
    from tsforecast.data.ingest import parse_timestamps

    frame = frame.reset_index(drop=True)
    codes, uniques = pd.factorize(frame[spec.id_column], sort=False)
    if (codes < 0).any():
        raise DataError(
            f"{source}: {int((codes < 0).sum())} row(s) have no {spec.id_column!r}; every row needs a series id"
        )
    ids = pd.Index(np.asarray(uniques), name=spec.id_column)
    rows = spec.rows_of(ids, source)  # unknown ids fail first, all named
    ts = pd.DatetimeIndex(parse_timestamps(frame[spec.timestamp_column], spec.timestamp_column, source))
    ticks = ts.as_unit("ns").asi8
    order = np.lexsort((ticks, codes))  # by series (first appearance), then time
    c, t = codes[order], ticks[order]
    dup = (c[1:] == c[:-1]) & (t[1:] == t[:-1])
    if dup.any():
        raise DataError(
            f"{source}: series {_names(ids[np.unique(c[1:][dup])])} repeat a timestamp; "
            "timestamps must be unique per series - drop or aggregate duplicates"
        )
    lengths = np.bincount(codes, minlength=len(ids))
    L = spec.input_size
    if (lengths < L).any():
        short = np.flatnonzero(lengths < L)
        raise DataError(
            f"{source}: series {_names([f'{ids[i]} ({lengths[i]} rows)' for i in short])} have fewer than "
            f"input_size={L} rows; each series needs its most recent {L} steps at {spec.freq!r}"
        )
    ends = np.cumsum(lengths)
    used = order[(ends - L)[:, None] + np.arange(L)]  # (S, L) frame rows, time order
    x = np.stack([numeric_values(frame[col], col, source)[used] for col in spec.columns], axis=2)  # (S, L, C)
    bad = ~np.isfinite(x).all(axis=(1, 2))
    if bad.any():
        raise DataError(
            f"{source}: series {_names(ids[bad])} have missing or non-finite values in their last {L} "
            "rows; fill them before forecasting"
        )
    _check_grid(ts, used, ids, spec, source)
    return ids, rows, ts[used[:, -1]], x


def numeric_values(values: pd.Series, column: str, source: str) -> np.ndarray:
    """``values`` as float64 (numbers, or text holding numbers); fails naming a few bad ones."""
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values)
        or values.dtype == object
        or pd.api.types.is_string_dtype(values)
    ):
        raise DataError(f"{source}: column '{column}' has dtype {values.dtype}; it must be numeric")
    converted = pd.to_numeric(values, errors="coerce")
    bad = values[converted.isna() & values.notna()]
    if len(bad):
        raise DataError(
            f"{source}: column '{column}' holds non-numeric values {[str(v) for v in bad.head(3)]} "
            f"(first at row {bad.index[0]}); it must be numeric"
        )
    return converted.to_numpy(dtype="float64")


def _check_grid(ts: pd.DatetimeIndex, used: np.ndarray, ids: pd.Index, spec: PanelSpec, source: str) -> None:
    """Each series' used rows are every ``spec.freq`` (vectorised per distinct first timestamp)."""
    got = ts.as_unit("ns").asi8[used]  # (S, L)
    first = ts[used[:, 0]]
    codes, uniques = pd.factorize(first)
    L = spec.input_size
    table = np.stack([pd.date_range(u, periods=L, freq=spec.freq).as_unit("ns").asi8 for u in uniques])
    off = (got != table[codes]).any(axis=1)
    if off.any():
        raise DataError(
            f"{source}: the last {L} timestamps of series {_names(ids[off])} are not every {spec.freq!r} "
            "(the model's frequency); fill the gaps or resample"
        )


def forecast_panel(
    model: LSTMForecaster,
    extra: dict[str, Any],
    history: pd.DataFrame,
    levels: Sequence[float] | None = None,
    source: str = "model input",
    *,
    address: str | None = None,
    in_process: bool | None = True,
    progress: bool = False,
) -> pd.DataFrame:
    """The next ``horizon`` steps of every series of ``history``: ``[id, timestamp, forecast,
    lo_<l>, hi_<l>...]``. ``levels``: as :func:`tsforecast.forecasting.core.forecast_frame`.
    ``address``/``in_process``: where the chunks run (:func:`tsforecast.parallel.map_series`)."""
    spec = PanelSpec.from_model(model, extra)
    calibration = Calibration.from_extra(extra)
    chosen = serving_levels(calibration, levels)
    ids, rows, last, x = last_windows(history, spec, source)
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    args = asdict(model.args)
    chunks = [
        ForecastChunk(args, weights, x[a:b], spec.mean[rows[a:b]], spec.std[rows[a:b]], calibration, chosen)
        for a, b in chunk_ranges(len(ids), SECONDS_PER_SERIES, target_s=CHUNK_TARGET_S)
    ]
    parts = map_series(
        forecast_chunk, chunks, address, in_process=in_process, desc="forecast chunks", progress=progress
    )
    H = spec.horizon
    out = pd.DataFrame(
        {
            spec.id_column: np.repeat(ids.to_numpy(), H),
            "timestamp": future_grid(last, spec.freq, H),
        }
    )
    for name in parts[0]:  # forecast, then lo_<l>, hi_<l> per level
        out[name] = np.concatenate([p[name] for p in parts]).ravel()
    return out


__all__ = [
    "ForecastChunk",
    "PanelSpec",
    "forecast_chunk",
    "forecast_panel",
    "future_grid",
    "last_windows",
    "numeric_values",
]
