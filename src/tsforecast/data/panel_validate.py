"""Stage ``validate`` for a panel (``data.id_column`` set): frame checks in GX, series checks in chunks.

Two layers, each reporting *every* problem it finds in one :class:`DataValidationError`:

1. **The frame** (Great Expectations, :func:`tsforecast.data.gx_suite.run_checks`): the id,
   timestamp, target and covariate columns exist, ids and timestamps are never empty, the
   target and covariates are numeric. The Data Docs show this suite.
2. **Each series**, vectorised over chunks of series
   (:func:`tsforecast.data.series_checks.check_chunk` through :func:`tsforecast.parallel.map_series`,
   on Dask at ``orchestration.dask_address``): one
   frequency for the whole panel (``data.freq`` or inferred), each series on its own grid of
   it (fixed steps: from the series' first timestamp; calendar steps such as ``MS``: on the
   panel's calendar), no duplicate timestamps, finite values, gaps (missing steps or empty
   cells) of at most ``data.fill_gaps`` steps, a target that varies, and enough rows for the
   split and the window (:func:`tsforecast.dataset.split.split_bounds`). Each rule is one line naming
   the bad series (the first :data:`~tsforecast.dataset.split.MAX_NAMED`, then a count).

Rows may come in any order: series are kept in order of first appearance, rows by time. A
series runs from its first target value to its last: rows with an empty target before or after
(the padding of a wide table turned long) are dropped, and counted in the report.
Gaps are filled by linear interpolation over grid steps inside each series (never across
series; at a series' edge the nearest value is repeated). On success ``data/validated/``
holds the long frame (id as a categorical of text ids, timestamp, float64 columns) and its
``meta.json``; on failure it keeps what it held. ``reports/validation.json`` is written
either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

from tsforecast.config import DataConfig, OrchestrationConfig, SplitConfig, WindowConfig
from tsforecast.errors import DataValidationError
from tsforecast.data.expectations import Plan, panel_frame_plan
from tsforecast.data.freq import infer_offset, offset_of_step
from tsforecast.data.gx_suite import expectation_rows, run_checks
from tsforecast.io import atomic_dir, write_json
from tsforecast.dataset.panel import factorize_ids
from tsforecast.data.series_checks import ChunkChecks, SeriesChunk, check_chunk
from tsforecast.dataset.split import MAX_NAMED, name_series, needed_rows, split_bounds, too_short_error
from tsforecast.parallel import chunk_ranges, map_series
from tsforecast.paths import DATA_DOCS_DIR, VALIDATED_FILE, VALIDATED_META, VALIDATION_REPORT, Paths

log = logging.getLogger(__name__)

SECONDS_PER_ROW = 2e-7  # check_chunk's cost per row, measured: sizes chunks of ~50 ms


@dataclass(frozen=True)
class PanelValidateResult:
    n_series: int
    n_rows: int
    n_filled: int
    n_expectations: int
    freq: str


# --------------------------------------------------------------------------- the whole panel


@dataclass(frozen=True)
class Arranged:
    """The raw frame as arrays, rows sorted by series (first appearance) then time."""

    ids: pd.Index
    lengths: np.ndarray  # (S,)
    ts: np.ndarray  # (rows,) int64 ns UTC instants
    values: np.ndarray  # (rows, C) float64
    tz: Any
    unit: str
    trimmed: int = 0  # rows with an empty target before a series' first value or after its last


def trim_edges(a: Arranged) -> Arranged:
    """Drop the rows with an empty target before each series' first value and after its last
    (the padding of a wide table turned long); a series with no value at all is kept whole, for
    the gap rule to name it. Vectorised."""
    has = ~np.isnan(a.values[:, 0])
    if has.all():
        return a
    heads = np.cumsum(a.lengths) - a.lengths
    seg = np.repeat(np.arange(a.lengths.size), a.lengths)
    idx = np.arange(has.size)
    first = np.minimum.reduceat(np.where(has, idx, has.size), heads)
    last = np.maximum.reduceat(np.where(has, idx, -1), heads)
    empty = (last < 0)[seg]
    keep = empty | ((idx >= first[seg]) & (idx <= last[seg]))
    if keep.all():
        return a
    lengths = np.bincount(seg[keep], minlength=a.lengths.size).astype(np.int64)
    values = np.ascontiguousarray(a.values[keep])
    return Arranged(a.ids, lengths, a.ts[keep], values, a.tz, a.unit, int((~keep).sum()))


def arrange(raw: pd.DataFrame, data: DataConfig) -> Arranged:
    """Factorise the ids, sort rows by (series, time) only when they are not already, trim each
    series' empty edges (:func:`trim_edges`) (pure)."""
    codes, uniques = factorize_ids(raw[data.id_column])
    tsc = pd.DatetimeIndex(raw[data.timestamp_column])
    ts = tsc.as_unit("ns").asi8  # UTC instants for a tz-aware column
    columns = [data.target, *data.covariates]
    values = raw[columns].to_numpy(dtype="float64", na_value=np.nan)
    in_order = bool((codes[1:] >= codes[:-1]).all()) and bool(
        ((ts[1:] >= ts[:-1]) | (codes[1:] != codes[:-1])).all()
    )
    if not in_order:
        order = np.lexsort((ts, codes))
        ts, values = ts[order], values[order]
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    ids = pd.Index(pd.Index(uniques).astype(str), name=data.id_column)
    return trim_edges(Arranged(ids, lengths, ts, np.ascontiguousarray(values), tsc.tz, tsc.unit))


def _stamp(value: int, tz: Any) -> pd.Timestamp:
    t = pd.Timestamp(int(value), unit="ns")
    return t.tz_localize("UTC").tz_convert(tz) if tz is not None else t


def _stamp_index(ts: np.ndarray, tz: Any) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(ts.view("datetime64[ns]"))
    return idx.tz_localize("UTC").tz_convert(tz) if tz is not None else idx


def panel_offset(a: Arranged, freq: str) -> BaseOffset:
    """``data.freq``, or the panel's most common step within series (a calendar offset such as
    ``MS`` or ``B`` when the longest series says so): one frequency for every series."""
    if freq != "auto":
        return to_offset(freq)
    seg_change = np.zeros(a.ts.size, dtype=bool)
    seg_change[np.cumsum(a.lengths)[:-1]] = True
    steps = np.diff(a.ts)[~seg_change[1:]]
    steps = steps[steps > 0]
    if steps.size == 0:
        raise DataValidationError(
            "no series has two distinct timestamps, so the frequency cannot be inferred; set data.freq"
        )
    modal = pd.Timedelta(int(pd.Series(steps).value_counts().idxmax()), unit="ns")
    if modal % pd.Timedelta(days=1) != pd.Timedelta(0):  # sub-daily: a fixed step
        return offset_of_step(modal)
    k = int(np.argmax(a.lengths))  # days, weeks, months ...: the calendar says which
    head = int(a.lengths[:k].sum())
    own = np.unique(a.ts[head : head + a.lengths[k]])
    idx = pd.DatetimeIndex(own.view("datetime64[ns]"))
    if a.tz is not None:
        idx = idx.tz_localize("UTC").tz_convert(a.tz)
    return infer_offset(idx) if len(idx) >= 2 else offset_of_step(modal)


@dataclass(frozen=True)
class PanelGrid:
    """The panel's frequency and each row's step on its series' grid (-1: off the grid)."""

    offset: BaseOffset
    pos: np.ndarray  # (rows,) int64
    first_ts: np.ndarray  # (S,) int64 ns: each series' first timestamp
    calendar: np.ndarray | None  # calendar offsets: the panel's calendar (ns ints)
    first_step: np.ndarray | None  # and each series' first step on it

    def timestamps(self, sizes: np.ndarray) -> np.ndarray:
        """(sum(sizes),) int64 ns: the grid of every series, ``sizes[i]`` steps from its start."""
        seg = np.repeat(np.arange(sizes.size), sizes)
        k = np.arange(seg.size) - (np.cumsum(sizes) - sizes)[seg]
        if self.calendar is None:
            return self.first_ts[seg] + k * int(pd.Timedelta(self.offset).value)
        assert self.first_step is not None
        return self.calendar[self.first_step[seg] + k]


def grid_positions(a: Arranged, offset: BaseOffset) -> PanelGrid:
    """Each row's step on its series' grid: fixed steps from the series' first timestamp, calendar
    offsets (``MS``, ``B``, ``W-SUN`` ...) on the panel's calendar (vectorised)."""
    heads = np.cumsum(a.lengths) - a.lengths
    seg = np.repeat(np.arange(a.lengths.size), a.lengths)
    first_ts = a.ts[heads]
    if isinstance(offset, Tick):
        step = int(pd.Timedelta(offset).value)
        delta = a.ts - first_ts[seg]
        return PanelGrid(offset, np.where(delta % step == 0, delta // step, -1), first_ts, None, None)
    lo, hi = _stamp(a.ts.min(), a.tz), _stamp(a.ts.max(), a.tz)
    calendar = pd.date_range(lo, hi, freq=offset).as_unit("ns")
    found = calendar.get_indexer(_stamp_index(a.ts, a.tz))
    start = found[heads]
    pos = np.where((found >= 0) & (start[seg] >= 0), found - start[seg], -1)
    # a calendar as long as the longest grid could reach past the data's end (filled steps never do)
    return PanelGrid(offset, pos, first_ts, calendar.asi8, np.maximum(start, 0))


def run_frame_suite(plan: Plan, paths: Paths) -> tuple[list[dict[str, Any]], list[str]]:
    """Run the frame checks through GX (Data Docs rebuilt whole); results and failure lines."""
    with atomic_dir(paths.reports / DATA_DOCS_DIR) as docs:
        return run_checks(plan, docs)


# --------------------------------------------------------------------------- one report


def _rule(
    source: str, col: str | list[str], n_bad: int, total: int, rule: str, items: list[str], fix: str
) -> str:
    where = f"column '{col}'" if isinstance(col, str) else f"columns {list(col)}"
    return f"{source}: {where}: {n_bad} of {total} series {rule}: {name_series(items, n_bad)}; {fix}"


def series_problems(
    checks: ChunkChecks, a: Arranged, grid: PanelGrid, data: DataConfig, source: str
) -> list[str]:
    """One line per broken rule, each naming the bad series (:data:`MAX_NAMED`, then a count)."""
    S, ids, tz, tsc = len(a.ids), a.ids, a.tz, data.timestamp_column
    columns = [data.target, *data.covariates]
    lines = []

    def named(mask: np.ndarray, describe: Any) -> tuple[int, list[str]]:
        bad = np.flatnonzero(mask)
        return bad.size, [f"{ids[i]} ({describe(i)})" for i in bad[:MAX_NAMED]]

    n, items = named(
        checks.dup > 0, lambda i: f"{checks.dup[i]} repeated, e.g. {_stamp(checks.dup_at[i], tz)}"
    )
    if n:
        lines.append(
            _rule(source, tsc, n, S, "repeat a timestamp", items, "timestamps must be unique within a "
                  "series - drop or aggregate duplicates")
        )  # fmt: skip
    how = "inferred" if data.freq == "auto" else "data.freq"
    n, items = named(checks.off > 0, lambda i: f"{checks.off[i]} rows, e.g. {_stamp(checks.off_at[i], tz)}")
    if n:
        lines.append(
            _rule(source, tsc, n, S, f"are off the panel's frequency ({grid.offset.freqstr!r}, {how}; each series "
                  "steps from its own first timestamp)", items,
                  "resample every series to one frequency" + (" or set data.freq" if how == "inferred" else ""))
        )  # fmt: skip
    for c, col in enumerate(columns):
        n, items = named(
            checks.inf[:, c] > 0,
            lambda i, c=c: f"{checks.inf[i, c]} values, e.g. at {_stamp(checks.inf_at[i, c], tz)}",
        )
        if n:
            lines.append(
                _rule(source, col, n, S, "hold non-finite values (inf)", items,
                      "replace them with numbers (or empty cells to have them interpolated)")
            )  # fmt: skip
    long = checks.long > 0  # (S, C): one line for every column (a missing timestamp is in all)
    first_col = long.argmax(axis=1)
    n, items = named(
        long.any(axis=1),
        lambda i: (
            _gap(checks, grid, i, first_col[i], tz)
            + (f" in '{columns[first_col[i]]}'" if len(columns) > 1 else "")
        ),
    )
    if n:
        lines.append(
            _rule(source, data.target if len(columns) == 1 else columns, n, S,
                  f"have gaps (missing timestamps or empty values) longer than data.fill_gaps={data.fill_gaps}",
                  items, "fill them in the source, drop those series or stretches, or raise data.fill_gaps")
        )  # fmt: skip
    n, items = named(checks.flat, lambda i: f"every value is {checks.flat_value[i]:g}")
    if n:
        lines.append(
            _rule(source, data.target, n, S, "are constant", items,
                  "a constant series cannot be forecast - drop these series")
        )  # fmt: skip
    return lines


def _gap(checks: ChunkChecks, grid: PanelGrid, i: int, c: int, tz: Any) -> str:
    """``5 missing steps from <t> to <t>`` of series ``i``'s first long gap in column ``c``."""
    first_step, length = int(checks.long_step[i, c]), int(checks.long_len[i, c])
    if grid.calendar is None:
        step = int(pd.Timedelta(grid.offset).value)
        at = [grid.first_ts[i] + k * step for k in (first_step, first_step + length - 1)]
    else:
        assert grid.first_step is not None
        at = [grid.calendar[grid.first_step[i] + k] for k in (first_step, first_step + length - 1)]
    return f"{length} missing steps from {_stamp(at[0], tz)} to {_stamp(at[1], tz)}"


def _freq_mismatch(a: Arranged, grid: PanelGrid, data: DataConfig, source: str) -> str | None:
    """A line when the panel's most common step is not one step of a given data.freq."""
    pos = grid.pos
    same = np.ones(pos.size, dtype=bool)
    same[np.cumsum(a.lengths)[:-1]] = False  # a series' first row
    steps = np.diff(pos)[same[1:] & (pos[1:] >= 0) & (pos[:-1] >= 0)]
    steps = steps[steps > 0]
    if steps.size == 0 or int(np.bincount(np.minimum(steps, 1000)).argmax()) == 1:
        return None
    alias = panel_offset(a, "auto").freqstr
    return (
        f"{source}: column '{data.timestamp_column}': values must step by data.freq={data.freq!r}: the "
        f"panel's most common step is {alias}; set data.freq={alias!r} or 'auto'"
    )


def check_series(a: Arranged, grid: PanelGrid, fill_gaps: int, address: str | None) -> ChunkChecks:
    """Run :func:`check_chunk` over chunks of series (on Dask at ``address``) and join the results."""
    heads = np.concatenate([[0], np.cumsum(a.lengths)])
    per_series = SECONDS_PER_ROW * float(a.lengths.mean())
    chunks = [
        SeriesChunk(
            first=lo,
            lengths=a.lengths[lo:hi],
            ts=a.ts[heads[lo] : heads[hi]],
            pos=grid.pos[heads[lo] : heads[hi]],
            values=a.values[heads[lo] : heads[hi]],
            fill_gaps=fill_gaps,
        )
        for lo, hi in chunk_ranges(len(a.lengths), per_series)
    ]
    parts = map_series(check_chunk, chunks, address=address, desc="validating series")
    joined: dict[str, Any] = {"first": 0}
    for name in ChunkChecks.__dataclass_fields__:
        if name in ("first", "values"):
            continue
        joined[name] = np.concatenate([getattr(p, name) for p in parts])
    ok = all(p.values is not None for p in parts)
    joined["values"] = np.concatenate([p.values for p in parts]) if ok else None  # type: ignore[misc]
    return ChunkChecks(**joined)


# --------------------------------------------------------------------------- the stage


def _report(source: str, data: DataConfig, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    failed = [r for r in results if not r["success"]]
    return {
        "success": False,
        "source": source,
        "id_column": data.id_column,
        "n_expectations": len(results),
        "n_failed": len(failed),
        "expectations": expectation_rows(results),
        **extra,
    }


def _fail(paths: Paths, report: dict[str, Any], lines: list[str]) -> DataValidationError:
    write_json(paths.reports / VALIDATION_REPORT, report)
    log.info("validation failed: %s", "; ".join(lines)[:500])
    return DataValidationError("\n".join(dict.fromkeys(lines)))


def _validated_frame(a: Arranged, grid: PanelGrid, checks: ChunkChecks, data: DataConfig) -> pd.DataFrame:
    """The long frame on every series' grid: id (categorical text), timestamp, float64 columns."""
    assert checks.values is not None
    sizes = checks.size
    stamps = pd.DatetimeIndex(grid.timestamps(sizes).view("datetime64[ns]"))
    if a.tz is not None:
        stamps = stamps.tz_localize("UTC").tz_convert(a.tz)
    codes = np.repeat(np.arange(len(a.ids), dtype=np.int32), sizes)
    frame = {
        data.id_column: pd.Categorical.from_codes(codes, categories=a.ids),
        data.timestamp_column: stamps.as_unit(a.unit) if a.unit != "ns" else stamps,
    }
    for c, col in enumerate([data.target, *data.covariates]):
        frame[col] = checks.values[:, c]
    return pd.DataFrame(frame)


def validate_panel(
    data: DataConfig, split: SplitConfig, window: WindowConfig, orchestration: OrchestrationConfig,
    paths: Paths, raw: pd.DataFrame, source: str,
) -> PanelValidateResult:  # fmt: skip
    """Frame checks (GX), then every series' checks in chunks; write ``data/validated/`` if all hold."""
    assert data.id_column is not None
    plan = panel_frame_plan(raw, data, source)  # pure
    log.info("validating %d rows of %s as a panel by %r", len(raw), source, data.id_column)
    results, lines = run_frame_suite(plan, paths)  # edge: Data Docs
    if lines:
        raise _fail(paths, _report(source, data, results), lines)
    a = arrange(raw, data)  # pure
    if a.trimmed:
        log.info("dropped %d rows with an empty target before or after a series' values", a.trimmed)
    grid = grid_positions(a, panel_offset(a, data.freq))
    if data.freq != "auto" and (wrong := _freq_mismatch(a, grid, data, source)):
        raise _fail(paths, _report(source, data, results), [wrong])
    checks = check_series(a, grid, data.fill_gaps, orchestration.dask_address)  # pure, maybe on Dask
    lines = series_problems(checks, a, grid, data, source)
    sound = ~checks.bad
    _, short = split_bounds(checks.size, split, window)
    short &= sound  # a series' length counts once its grid is known
    if short.any():
        lines.append(f"{source}: {too_short_error(a.ids, checks.size, short, needed_rows(split, window))}")
    S, freq = len(a.ids), grid.offset.freqstr
    filled = {str(a.ids[i]): int(checks.filled[i]) for i in np.flatnonzero(checks.filled)}
    counts = {
        "n_series": S,
        "n_raw_rows": len(raw),
        "n_trimmed_rows": a.trimmed,
        "freq": freq,
        "n_series_bad": int((~sound | short).sum()),
        "lengths": {"min": int(checks.size.min()), "median": float(np.median(checks.size)),
                    "max": int(checks.size.max())},
    }  # fmt: skip
    if lines or checks.values is None:
        bad = [str(i) for i in a.ids[~sound | short]]
        raise _fail(paths, _report(source, data, results, **counts, bad_series=bad), lines)
    out = _validated_frame(a, grid, checks, data)
    n_filled = int(checks.filled.sum())
    ts = out[data.timestamp_column]
    meta = {
        "freq": freq,
        "n_rows": len(out),
        "start": str(ts.min()),
        "end": str(ts.max()),
        "tz": str(a.tz) if a.tz is not None else None,
        "filled": filled,  # series id -> grid steps filled
        "source": source,
        "id_column": data.id_column,
        "n_series": S,
    }
    report = _report(source, data, results, **counts)
    report.update(success=True, n_rows=len(out), n_filled=n_filled, n_series_filled=len(filled),
                  filled_by_series=filled)  # fmt: skip
    with atomic_dir(paths.validated) as tmp:  # edge: atomic write
        out.to_parquet(tmp / VALIDATED_FILE, index=False)
        write_json(tmp / VALIDATED_META, meta)
    write_json(paths.reports / VALIDATION_REPORT, report)
    log.info("validated %d series, %d rows: %d grid steps filled in %d series", S, len(out), n_filled,
             len(filled))  # fmt: skip
    return PanelValidateResult(
        n_series=S, n_rows=len(out), n_filled=n_filled, n_expectations=len(results), freq=freq
    )
