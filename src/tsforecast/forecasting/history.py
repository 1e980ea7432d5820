"""What a forecast reads: the history of every series, checked against the model card.

A history is a long frame (:mod:`tsforecast.dataset.long`): the id column, the model's
timestamp column, target and covariates; one series gets its implicit id where it is read. Each
series needs at least ``input_size`` rows at the model's frequency; its last ``input_size`` are
used, rows may come in any order (they are sorted in time per series) and timestamps may be
datetimes or text (ISO 8601, as CSV and JSON requests carry them). Every series must be one the
model was trained on: it is scaled with its own train-row scaler from the card; unknown ids fail
in one error naming them. A problem is named with the series it concerns (for one series, with
its rows), all offending series at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsforecast.dataset.long import frame_columns, id_column, is_one_series
from tsforecast.errors import DataError, ModelLoadError
from tsforecast.training.card import ModelCard
from tsforecast.training.model import LSTMForecaster

SHOWN_IDS = 10  # ids named in an error before "and N more"


@dataclass(frozen=True)
class ServingSpec:
    """What a history must hold for one model, read from its model card."""

    id_column: str  # the long frame's id column (the implicit one for one series)
    timestamp_column: str
    columns: tuple[str, ...]  # target first, then covariates
    freq: str  # pandas offset alias, e.g. "30min"
    input_size: int
    horizon: int
    ids: pd.Index  # the model's series, in training order
    mean: np.ndarray  # (S, C) per-series train-row scaler
    std: np.ndarray  # (S, C)
    needed: tuple[str, ...]  # the columns a request holds (no id column for one series)
    one_series: bool  # the implicit id: errors speak of rows, not of series ids

    @classmethod
    def from_card(cls, model: LSTMForecaster, card: ModelCard) -> ServingSpec:
        """The spec of ``card``; fails when the card does not describe ``model``'s weights."""
        mean, std = card.series_scalers.arrays()
        a = model.args
        got = (a.input_size, a.horizon, a.n_features)
        card_says = (card.input_size, card.horizon, len(card.columns))
        if got != card_says or mean.shape[1] != len(card.columns):
            raise ModelLoadError(
                f"the model has (input_size, horizon, features)={got} but its model card says "
                f"{card_says} with columns {list(card.columns)} and scalers for {mean.shape[1]} columns; "
                "the model file is damaged - retrain with `tsforecast train`"
            )
        return cls(
            id_column=id_column(card),
            timestamp_column=card.timestamp_column,
            columns=tuple(card.columns),
            freq=card.freq,
            input_size=card.input_size,
            horizon=card.horizon,
            ids=pd.Index(list(card.series_scalers.ids), dtype=object),
            mean=mean,
            std=std,
            needed=tuple(frame_columns(card, card.timestamp_column, *card.columns)),
            one_series=is_one_series(card),
        )

    def rows_of(self, ids: pd.Index, source: str) -> np.ndarray:
        """Each of ``ids``' row in the model's scalers; unknown ids fail, all named in one error."""
        pos = self.ids.get_indexer(pd.Index(np.asarray(ids, dtype=object), dtype=object))
        if (pos < 0).any():
            raise DataError(
                f"{source}: {int((pos < 0).sum())} series are not among the model's {len(self.ids)} "
                f"known series: {names(ids[pos < 0])}; a global model forecasts only the series it was "
                "trained on (retrain with them, e.g. `dvc repro`)"
            )
        return pos


@dataclass(frozen=True)
class LastWindows:
    """Each series' last ``input_size`` rows, in first-appearance order of the series."""

    ids: pd.Index  # (S,) as the history names them
    rows: np.ndarray  # (S,) each series' row in the model's scalers
    last: pd.DatetimeIndex  # (S,) each series' last timestamp
    x: np.ndarray  # (S, L, C) raw inputs


def names(ids: Sequence[Any]) -> str:
    """``a, b, c and 7 more``: the first :data:`SHOWN_IDS` of ``ids``."""
    shown = ", ".join(str(i) for i in list(ids)[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def check_table(frame: Any, spec: ServingSpec, source: str = "model input") -> None:
    """``frame`` is a DataFrame holding every column the model needs (checked before the implicit id
    is added, so the columns named are the caller's)."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{source}: expected a table (pandas DataFrame) with columns {list(spec.needed)}, "
            f"got {type(frame).__name__}"
        )
    missing = [c for c in spec.needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {[str(c) for c in frame.columns]}. "
            f"The model needs {list(spec.needed)}"
        )


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


def _series_of(frame: pd.DataFrame, spec: ServingSpec, source: str) -> tuple[np.ndarray, pd.Index]:
    """Codes (rows,) and ids of the series, in first-appearance order; rows without an id fail."""
    codes, uniques = pd.factorize(frame[spec.id_column], sort=False)
    if (codes < 0).any():
        raise DataError(
            f"{source}: {int((codes < 0).sum())} row(s) have no {spec.id_column!r}; every row needs a series id"
        )
    return codes, pd.Index(np.asarray(uniques), name=spec.id_column)


def _time_order(
    ticks: np.ndarray, codes: np.ndarray, ids: pd.Index, ts: pd.DatetimeIndex, spec: ServingSpec, source: str
) -> np.ndarray:
    """Row order by series (first appearance), then time; a repeated timestamp fails."""
    order = np.lexsort((ticks, codes))
    c, t = codes[order], ticks[order]
    dup = (c[1:] == c[:-1]) & (t[1:] == t[:-1])
    if dup.any():
        if spec.one_series:
            raise DataError(
                f"{source}: timestamp {ts[order[1:][dup][0]]} appears more than once; timestamps must be "
                "unique - drop or aggregate duplicates"
            )
        raise DataError(
            f"{source}: series {names(ids[np.unique(c[1:][dup])])} repeat a timestamp; "
            "timestamps must be unique per series - drop or aggregate duplicates"
        )
    return order


def _check_lengths(lengths: np.ndarray, ids: pd.Index, spec: ServingSpec, source: str) -> None:
    L = spec.input_size
    short = np.flatnonzero(lengths < L)
    if not short.size:
        return
    if spec.one_series:
        raise DataError(
            f"{source}: {int(lengths[0]) if lengths.size else 0} row(s) given; the model needs at least "
            f"input_size={L} rows (the most recent {L} steps at {spec.freq!r}) to forecast the next "
            f"{spec.horizon}"
        )
    raise DataError(
        f"{source}: series {names([f'{ids[i]} ({lengths[i]} rows)' for i in short])} have fewer than "
        f"input_size={L} rows; each series needs its most recent {L} steps at {spec.freq!r}"
    )


def _check_finite(
    x: np.ndarray, ts: pd.DatetimeIndex, used: np.ndarray, ids: pd.Index, spec: ServingSpec, source: str
) -> None:
    L = spec.input_size
    bad = ~np.isfinite(x)  # (S, L, C)
    if not bad.any():
        return
    if spec.one_series:
        col = int(np.argmax(bad[0].any(axis=0)))
        steps = np.flatnonzero(bad[0, :, col])
        at = [str(t) for t in ts[used[0, steps[:3]]]]
        raise DataError(
            f"{source}: column '{spec.columns[col]}' has {len(steps)} missing or non-finite value(s) "
            f"in the last {L} rows (at {at}); fill them before forecasting"
        )
    raise DataError(
        f"{source}: series {names(ids[bad.any(axis=(1, 2))])} have missing or non-finite values in their "
        f"last {L} rows; fill them before forecasting"
    )


def _check_grid(
    ts: pd.DatetimeIndex, used: np.ndarray, ids: pd.Index, spec: ServingSpec, source: str
) -> None:
    """Each series' used rows are every ``spec.freq`` (vectorised per distinct first timestamp)."""
    got = ts.as_unit("ns").asi8[used]  # (S, L)
    codes, uniques = pd.factorize(ts[used[:, 0]])
    L = spec.input_size
    table = np.stack([pd.date_range(u, periods=L, freq=spec.freq).as_unit("ns").asi8 for u in uniques])
    off = got != table[codes]  # (S, L)
    if not off.any():
        return
    if spec.one_series:
        i = int(np.argmax(off[0]))
        expected = pd.DatetimeIndex(table[codes[0]])  # ns since the epoch (UTC instants when tz-aware)
        if ts.tz is not None:
            expected = expected.tz_localize("UTC").tz_convert(ts.tz)
        raise DataError(
            f"{source}: the last {L} timestamps must be every {spec.freq!r} (the model's frequency); "
            f"row {int(used[0, i])} is {ts[used[0, i]]}, expected {expected[i]} - fill the gap or resample"
        )
    raise DataError(
        f"{source}: the last {L} timestamps of series {names(ids[off.any(axis=1)])} are not every "
        f"{spec.freq!r} (the model's frequency); fill the gaps or resample"
    )


def last_windows(frame: pd.DataFrame, spec: ServingSpec, source: str = "model input") -> LastWindows:
    """Each series' last ``input_size`` rows of the long frame ``frame``, checked (see the module doc).

    Fails naming every offending series: missing columns or ids, series the model does not know,
    duplicate timestamps, too few rows, missing or non-numeric values in the used rows, or used
    rows off the model's frequency.
    """
    from tsforecast.data.ingest import parse_timestamps

    missing = [c for c in (spec.id_column, *spec.needed) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {[str(c) for c in frame.columns]}. "
            f"The model needs {list(spec.needed)}"
        )
    if frame.empty and not spec.one_series:
        raise DataError(f"{source}: no rows; send at least input_size={spec.input_size} rows per series")
    frame = frame.reset_index(drop=True)
    codes, ids = _series_of(frame, spec, source)
    rows = spec.rows_of(ids, source)  # unknown ids fail first, all named
    ts = pd.DatetimeIndex(parse_timestamps(frame[spec.timestamp_column], spec.timestamp_column, source))
    order = _time_order(ts.as_unit("ns").asi8, codes, ids, ts, spec, source)
    lengths = np.bincount(codes, minlength=len(ids))
    _check_lengths(lengths, ids, spec, source)
    L = spec.input_size
    used = order[(np.cumsum(lengths) - L)[:, None] + np.arange(L)]  # (S, L) frame rows, time order
    x = np.stack([numeric_values(frame[col], col, source)[used] for col in spec.columns], axis=2)  # (S, L, C)
    _check_finite(x, ts, used, ids, spec, source)
    _check_grid(ts, used, ids, spec, source)
    return LastWindows(ids=ids, rows=rows, last=ts[used[:, -1]], x=x)


def future_grid(last: pd.DatetimeIndex, freq: str, horizon: int) -> pd.DatetimeIndex:
    """(S * H,) timestamps: the ``horizon`` steps after each of ``last``, series after series."""
    codes, uniques = pd.factorize(last)
    offset = to_offset(freq)
    table = np.stack(
        [pd.date_range(u, periods=horizon + 1, freq=offset)[1:].as_unit("ns").asi8 for u in uniques]
    )  # (U, H) int64 ns (UTC instants when tz-aware)
    flat = pd.DatetimeIndex(table[codes].ravel())
    return flat.tz_localize("UTC").tz_convert(last.tz) if last.tz is not None else flat


__all__ = [
    "LastWindows",
    "ServingSpec",
    "check_table",
    "future_grid",
    "last_windows",
    "names",
    "numeric_values",
]
