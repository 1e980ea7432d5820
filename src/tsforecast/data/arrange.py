"""The long frame as arrays: rows by series (first appearance) then time, each on its series' grid.

Pure and vectorised, for S >= 1 series alike. :func:`arrange` factorises the ids, sorts the rows
only when they are not already in order, trims each series' empty edges and, for a file that
lists each series in one block of rows, notes the rows it gives out of time order.
:func:`series_offset` finds the one frequency of every series and :func:`grid_positions` places
each row on its series' grid of it.

Rows may come in any order: series are kept in order of first appearance, rows by time. A
series runs from its first target value to its last: rows with an empty target before or after
(the padding of a wide table turned long) are dropped, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

from tsforecast.config import DataConfig
from tsforecast.data.freq import infer_offset, offset_of_step
from tsforecast.dataset.long import id_column
from tsforecast.dataset.panel import factorize_ids


@dataclass(frozen=True)
class OutOfOrder:
    """The rows a file gives before an earlier timestamp of their own series (in file order)."""

    series: np.ndarray  # (k,) the series of each
    rows: np.ndarray  # (k,) its row in the file
    ts: np.ndarray  # (k,) int64 ns: its timestamp
    prev_ts: np.ndarray  # (k,) int64 ns: the timestamp of the row before it


@dataclass(frozen=True)
class Arranged:
    """The long frame as arrays, rows sorted by series (first appearance) then time."""

    ids: pd.Index  # (S,) text ids, named after the id column
    lengths: np.ndarray  # (S,)
    ts: np.ndarray  # (rows,) int64 ns UTC instants
    values: np.ndarray  # (rows, C) float64: the target, then the covariates
    tz: Any
    unit: str
    order: np.ndarray | None = None  # file row of each sorted row (None: the file is in order)
    kept: np.ndarray | None = None  # sorted row of each kept row (None: nothing trimmed)
    out_of_order: OutOfOrder | None = None  # None: the file interleaves its series (no order to keep)
    trimmed: int = 0  # rows with an empty target before a series' first value or after its last

    @property
    def heads(self) -> np.ndarray:
        """(S,) each series' first row."""
        return np.cumsum(self.lengths) - self.lengths

    def file_rows(self, positions: np.ndarray) -> np.ndarray:
        """The file's row numbers of the arranged rows ``positions``."""
        p = np.asarray(positions, dtype=np.int64)
        p = p if self.kept is None else self.kept[p]
        return p if self.order is None else self.order[p]


def stamp(value: int, tz: Any) -> pd.Timestamp:
    """An int64 ns instant as a timestamp in ``tz`` (naive when ``tz`` is None)."""
    t = pd.Timestamp(int(value), unit="ns")
    return t.tz_localize("UTC").tz_convert(tz) if tz is not None else t


def stamp_index(ts: np.ndarray, tz: Any) -> pd.DatetimeIndex:
    """int64 ns instants as an index in ``tz``."""
    idx = pd.DatetimeIndex(ts.view("datetime64[ns]"))
    return idx.tz_localize("UTC").tz_convert(tz) if tz is not None else idx


def trim_edges(a: Arranged) -> Arranged:
    """Drop the rows with an empty target before each series' first value and after its last
    (the padding of a wide table turned long); a series with no value at all is kept whole, for
    the gap rule to name it. Vectorised."""
    has = ~np.isnan(a.values[:, 0])
    if has.all():
        return a
    seg = np.repeat(np.arange(a.lengths.size), a.lengths)
    idx = np.arange(has.size)
    first = np.minimum.reduceat(np.where(has, idx, has.size), a.heads)
    last = np.maximum.reduceat(np.where(has, idx, -1), a.heads)
    empty = (last < 0)[seg]
    keep = empty | ((idx >= first[seg]) & (idx <= last[seg]))
    if keep.all():
        return a
    lengths = np.bincount(seg[keep], minlength=a.lengths.size).astype(np.int64)
    values = np.ascontiguousarray(a.values[keep])
    kept = np.flatnonzero(keep)
    return Arranged(
        a.ids, lengths, a.ts[keep], values, a.tz, a.unit, a.order, kept, a.out_of_order, int((~keep).sum())
    )


def _out_of_order(codes: np.ndarray, ts: np.ndarray) -> OutOfOrder | None:
    """Rows before an earlier time of their series, when the file lists each series in one block."""
    if not bool((codes[1:] >= codes[:-1]).all()):
        return None  # series interleaved: the file keeps no order of its own
    back = np.flatnonzero((codes[1:] == codes[:-1]) & (ts[1:] < ts[:-1])) + 1
    return OutOfOrder(codes[back], back, ts[back], ts[back - 1])


def arrange(long: pd.DataFrame, data: DataConfig, columns: list[str]) -> Arranged:
    """Factorise the ids, sort rows by (series, time) only when they are not already, trim each
    series' empty edges (:func:`trim_edges`) (pure). ``columns``: the target, then covariates."""
    codes, uniques = factorize_ids(long[id_column(data)])
    tsc = pd.DatetimeIndex(long[data.timestamp_column])
    ts = tsc.as_unit("ns").asi8  # UTC instants for a tz-aware column
    values = long[columns].to_numpy(dtype="float64", na_value=np.nan)
    out_of_order = _out_of_order(codes, ts)
    in_order = out_of_order is not None and out_of_order.rows.size == 0
    order = None
    if not in_order:
        order = np.lexsort((ts, codes))  # stable: equal timestamps keep their file order
        ts, values = ts[order], values[order]
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    ids = pd.Index(pd.Index(uniques).astype(str), name=id_column(data))
    values = np.ascontiguousarray(values)
    return trim_edges(Arranged(ids, lengths, ts, values, tsc.tz, tsc.unit, order, None, out_of_order))


def series_offset(a: Arranged, freq: str) -> BaseOffset | None:
    """``data.freq``, or the most common step within series (a calendar offset such as ``MS`` or
    ``B`` when the longest series says so): one frequency for every series. None: no series has
    two distinct timestamps to infer it from."""
    if freq != "auto":
        return to_offset(freq)
    seg_change = np.zeros(a.ts.size, dtype=bool)
    seg_change[np.cumsum(a.lengths)[:-1]] = True
    steps = np.diff(a.ts)[~seg_change[1:]]
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    modal = pd.Timedelta(int(pd.Series(steps).value_counts().idxmax()), unit="ns")
    if modal % pd.Timedelta(days=1) != pd.Timedelta(0):  # sub-daily: a fixed step
        return offset_of_step(modal)
    k = int(np.argmax(a.lengths))  # days, weeks, months ...: the calendar says which
    own = np.unique(a.ts[a.heads[k] : a.heads[k] + a.lengths[k]])
    idx = stamp_index(own, a.tz)
    return infer_offset(idx) if len(idx) >= 2 else offset_of_step(modal)


@dataclass(frozen=True)
class Grid:
    """The frequency and each row's step on its series' grid (-1: off the grid)."""

    offset: BaseOffset
    pos: np.ndarray  # (rows,) int64
    first_ts: np.ndarray  # (S,) int64 ns: each series' first timestamp
    calendar: np.ndarray | None  # calendar offsets: the data's calendar (ns ints)
    first_step: np.ndarray | None  # and each series' first step on it

    @property
    def freq(self) -> str:
        return self.offset.freqstr

    def at(self, series: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """(k,) int64 ns: the timestamp of step ``steps[j]`` of series ``series[j]``."""
        if self.calendar is None:
            return self.first_ts[series] + steps * int(pd.Timedelta(self.offset).value)
        assert self.first_step is not None
        return self.calendar[self.first_step[series] + steps]

    def timestamps(self, sizes: np.ndarray) -> np.ndarray:
        """(sum(sizes),) int64 ns: the grid of every series, ``sizes[i]`` steps from its start."""
        seg = np.repeat(np.arange(sizes.size), sizes)
        return self.at(seg, np.arange(seg.size) - (np.cumsum(sizes) - sizes)[seg])


def grid_positions(a: Arranged, offset: BaseOffset) -> Grid:
    """Each row's step on its series' grid: fixed steps from the series' first timestamp, calendar
    offsets (``MS``, ``B``, ``W-SUN`` ...) on the data's calendar (vectorised)."""
    heads = a.heads
    seg = np.repeat(np.arange(a.lengths.size), a.lengths)
    first_ts = a.ts[heads]
    if isinstance(offset, Tick):
        step = int(pd.Timedelta(offset).value)
        delta = a.ts - first_ts[seg]
        return Grid(offset, np.where(delta % step == 0, delta // step, -1), first_ts, None, None)
    lo, hi = stamp(a.ts.min(), a.tz), stamp(a.ts.max(), a.tz)
    calendar = pd.date_range(lo, hi, freq=offset).as_unit("ns")
    found = calendar.get_indexer(stamp_index(a.ts, a.tz))
    start = found[heads]
    pos = np.where((found >= 0) & (start[seg] >= 0), found - start[seg], -1)
    # a calendar as long as the longest grid could reach past the data's end (filled steps never do)
    return Grid(offset, pos, first_ts, calendar.asi8, np.maximum(start, 0))


def modal_steps(pos: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(S,) float: each series' most common step between rows on the grid (ties: the smaller;
    NaN: no such step). Vectorised."""
    seg = np.repeat(np.arange(lengths.size), lengths)
    ok = (seg[1:] == seg[:-1]) & (pos[1:] >= 0) & (pos[:-1] >= 0)
    steps, series = np.diff(pos)[ok], seg[1:][ok]
    steps, series = steps[steps > 0], series[steps > 0]
    out = np.full(lengths.size, np.nan)
    if steps.size == 0:
        return out
    order = np.lexsort((steps, series))
    steps, series = steps[order], series[order]
    heads = np.flatnonzero(np.r_[True, (series[1:] != series[:-1]) | (steps[1:] != steps[:-1])])
    counts = np.diff(np.r_[heads, steps.size])
    best = np.lexsort((steps[heads], -counts, series[heads]))  # per series: most runs, then smallest
    run_series = series[heads][best]
    first = np.r_[True, run_series[1:] != run_series[:-1]]
    out[run_series[first]] = steps[heads][best][first]
    return out


__all__ = [
    "Arranged",
    "Grid",
    "OutOfOrder",
    "arrange",
    "grid_positions",
    "modal_steps",
    "series_offset",
    "stamp",
    "stamp_index",
    "trim_edges",
]
