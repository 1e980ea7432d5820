"""The per-series rules of validation, vectorised over a chunk of series (pure).

:func:`check_chunk` is what :func:`tsforecast.parallel.map_series` sends to the workers (on
Dask at ``orchestration.dask_address``): a :class:`SeriesChunk` carries every array it needs
(never a path), and the :class:`ChunkChecks` that comes back says, per series, what is wrong
and, when nothing is, the chunk on its grid with its short gaps filled. No Python loop runs
per row or per series; the only loops are over the (few) value columns. :func:`check_series`
cuts the series into chunks and joins the results.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsforecast.parallel import chunk_ranges, map_series

NAT = np.iinfo(np.int64).min  # "no such row" in the per-series first-offender arrays
SECONDS_PER_ROW = 2e-7  # check_chunk's cost per row, measured: sizes chunks of ~50 ms


@dataclass(frozen=True)
class SeriesChunk:
    """Series ``first .. first+len(lengths)-1``, rows sorted by series then time (all a worker needs)."""

    first: int
    lengths: np.ndarray  # (n,) rows of each series
    ts: np.ndarray  # (rows,) int64 instants (ns since the epoch, UTC)
    pos: np.ndarray  # (rows,) int64 grid step from the series' first timestamp; -1: off the grid
    values: np.ndarray  # (rows, C) float64, NaN = empty cell
    fill_gaps: int
    calendar: np.ndarray | None = None  # calendar offsets: the data's calendar (int64 ns) ...
    first_step: np.ndarray | None = None  # (n,) ... and each series' first step on it


@dataclass(frozen=True)
class ChunkChecks:
    """What :func:`check_chunk` found, per series of the chunk; ``values`` only when all is well."""

    first: int
    dup: np.ndarray  # (n,) rows repeating the previous timestamp
    dup_at: np.ndarray  # (n,) int64 the first repeated timestamp (NAT: none)
    off: np.ndarray  # (n,) rows off the grid
    off_at: np.ndarray  # (n,) int64 the first one's timestamp
    inf: np.ndarray  # (n, C) non-finite (inf) values
    inf_at: np.ndarray  # (n, C) int64 the first one's timestamp
    long: np.ndarray  # (n, C) runs of missing steps longer than fill_gaps
    long_step: np.ndarray  # (n, C) grid step where the first long run starts
    long_len: np.ndarray  # (n, C) its length in steps
    runs: np.ndarray  # (k, 4) int64 every long run: [series (of the whole data), column, step, length]
    longest: np.ndarray  # (n, C) float the longest run of missing steps (inf: no value; NaN: no grid)
    spread: np.ndarray  # (n,) float the target's max - min (NaN: no value)
    flat: np.ndarray  # (n,) bool: the target has one value (NaN aside)
    flat_value: np.ndarray  # (n,) that value
    size: np.ndarray  # (n,) steps of the series' grid (its row count when its grid is unusable)
    filled: np.ndarray  # (n,) grid steps that were filled
    filled_mask: np.ndarray  # (G,) bool: which steps of the grids of the sound series were filled
    values: np.ndarray | None  # (sum(size), C) float64 on the grid, gaps filled

    @property
    def sound(self) -> np.ndarray:
        """(n,) bool: the series' grid is known (no repeated timestamp, none off the grid)."""
        return (self.dup == 0) & (self.off == 0)

    @property
    def bad(self) -> np.ndarray:
        """(n,) bool: the series breaks a rule (its length is checked later)."""
        return ~self.sound | (self.inf > 0).any(1) | (self.long > 0).any(1) | self.flat


def _first_per_series(rows: np.ndarray, seg: np.ndarray, n: int, value: np.ndarray) -> np.ndarray:
    """``value`` at the first of ``rows`` (sorted) in each series, NAT where a series has none."""
    out = np.full(n, NAT, dtype=np.int64)
    series, first = np.unique(seg[rows], return_index=True)
    out[series] = value[rows[first]]
    return out


def _interpolate(col: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``col`` (G,) with NaN filled linearly in time ``x`` (G,) int64 between the nearest values of
    the same segment ``[lo, hi)`` (per row); at a segment's edge the nearest value is repeated.
    Vectorised."""
    idx = np.arange(col.size)
    valid = ~np.isnan(col)
    prev = np.maximum.accumulate(np.where(valid, idx, -1))
    nxt = np.minimum.accumulate(np.where(valid, idx, col.size)[::-1])[::-1]
    has_prev, has_next = prev >= lo, nxt < hi
    p, q = np.where(has_prev, prev, 0), np.where(has_next, nxt, 0)
    both = has_prev & has_next & (q > p)
    weight = np.where(both, (x - x[p]) / np.where(both, x[q] - x[p], 1), 0.0)  # int64 differences: exact
    linear = col[p] + (col[q] - col[p]) * weight
    return np.where(valid, col, np.where(both, linear, np.where(has_prev, col[p], col[q])))


def _gap_runs(
    grid: np.ndarray, gseg: np.ndarray, g_lo: np.ndarray, g_hi: np.ndarray, n: int, fill_gaps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of missing steps of each column of ``grid`` (G, C), never spanning series: the long
    ones per series (count, first step, first length), every long run, and the longest (pure)."""
    C = grid.shape[1]
    long, long_step, long_len = (np.zeros((n, C), np.int64) for _ in range(3))
    longest = np.zeros((n, C))
    runs = []
    for c in range(C):
        miss = np.isnan(grid[:, c])
        starts = np.flatnonzero(miss & ((np.arange(miss.size) == g_lo) | ~np.roll(miss, 1)))
        ends = np.flatnonzero(miss & ((np.arange(miss.size) == g_hi - 1) | ~np.roll(miss, -1)))
        run = ends - starts + 1  # one run per start, in order (runs never span series)
        whole = run == (g_hi - g_lo)[starts]  # no value in the series to fill from
        np.maximum.at(longest[:, c], gseg[starts], np.where(whole, np.inf, run))
        is_long = (run > fill_gaps) | whole
        s = gseg[starts[is_long]]
        long[:, c] = np.bincount(s, minlength=n)
        first = np.unique(s, return_index=True)
        steps = starts[is_long] - g_lo[starts[is_long]]
        long_step[first[0], c] = steps[first[1]]
        long_len[first[0], c] = run[is_long][first[1]]
        runs.append(np.stack([s, np.full(s.size, c), steps, run[is_long]], axis=1))
    return long, long_step, long_len, np.concatenate(runs).astype(np.int64), longest


def check_chunk(chunk: SeriesChunk) -> ChunkChecks:
    """Duplicates, off-grid rows, non-finite values, long gaps and flat targets of each series of
    the chunk, and the chunk on its grid with short gaps filled when every series is sound (pure)."""
    lengths, ts, pos, values = chunk.lengths, chunk.ts, chunk.pos, chunk.values
    n, C = lengths.size, values.shape[1]
    seg = np.repeat(np.arange(n), lengths)  # (rows,) series of each row
    heads = np.cumsum(lengths) - lengths
    dup_rows = np.flatnonzero((seg[1:] == seg[:-1]) & (ts[1:] == ts[:-1])) + 1
    off_rows = np.flatnonzero(pos < 0)
    dup = np.bincount(seg[dup_rows], minlength=n)
    off = np.bincount(seg[off_rows], minlength=n)
    inf, inf_at = np.zeros((n, C), np.int64), np.full((n, C), NAT, np.int64)
    for c in range(C):
        rows = np.flatnonzero(np.isinf(values[:, c]))
        inf[:, c] = np.bincount(seg[rows], minlength=n)
        inf_at[:, c] = _first_per_series(rows, seg, n, ts)
    with warnings.catch_warnings():  # an all-NaN series: fmin/fmax give NaN, not flat
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.fmin.reduceat(values[:, 0], heads), np.fmax.reduceat(values[:, 0], heads)
        spread = hi - lo  # inf - inf: NaN, neither flat nor varying
    flat = (lo == hi) & np.isfinite(lo)
    # the grid of every series whose timestamps are sound: step 0 .. its last row's step
    sound = (dup == 0) & (off == 0)
    size = np.where(sound, pos[heads + lengths - 1] + 1, lengths).astype(np.int64)
    used = np.where(sound, size, 0)
    out_head = np.cumsum(used) - used
    keep = sound[seg]
    gseg = np.repeat(np.arange(n), used)  # (G,) series of each grid step
    g_lo, g_hi = out_head[gseg], (out_head + used)[gseg]
    grid = np.full((gseg.size, C), np.nan)
    grid[out_head[seg[keep]] + pos[keep]] = values[keep]
    long, long_step, long_len, runs, longest = _gap_runs(grid, gseg, g_lo, g_hi, n, chunk.fill_gaps)
    runs[:, 0] += chunk.first
    longest[~sound] = np.nan
    missing_any = np.isnan(grid).any(axis=1)
    checks: dict[str, Any] = dict(
        first=chunk.first,
        dup=dup,
        dup_at=_first_per_series(dup_rows, seg, n, ts),
        off=off,
        off_at=_first_per_series(off_rows, seg, n, ts),
        inf=inf,
        inf_at=inf_at,
        long=long,
        long_step=long_step,
        long_len=long_len,
        runs=runs,
        longest=longest,
        spread=spread,
        flat=flat,
        flat_value=np.where(flat, lo, np.nan),
        size=size,
        filled=np.bincount(gseg[missing_any], minlength=n),
        filled_mask=missing_any,
        values=None,
    )
    result = ChunkChecks(**checks)
    if result.bad.any():
        return result
    step = np.arange(gseg.size) - g_lo  # (G,) each grid row's step in its series
    if chunk.calendar is None:  # fixed steps: time is the step
        x = step
    else:
        assert chunk.first_step is not None
        x = chunk.calendar[chunk.first_step[gseg] + step]
    for c in range(C):
        if np.isnan(grid[:, c]).any():
            grid[:, c] = _interpolate(grid[:, c], g_lo, g_hi, x)
    return ChunkChecks(**{**checks, "values": grid})


def check_series(
    lengths: np.ndarray,
    ts: np.ndarray,
    pos: np.ndarray,
    values: np.ndarray,
    fill_gaps: int,
    address: str | None,
    calendar: np.ndarray | None = None,
    first_step: np.ndarray | None = None,
) -> ChunkChecks:
    """Run :func:`check_chunk` over chunks of series (on Dask at ``address``) and join the results.

    ``calendar`` and ``first_step``: a calendar frequency's grid (:class:`tsforecast.data.arrange.Grid`),
    so that gaps are filled linearly in time, not in steps."""
    heads = np.concatenate([[0], np.cumsum(lengths)])
    per_series = SECONDS_PER_ROW * float(lengths.mean())
    chunks = [
        SeriesChunk(
            first=lo,
            lengths=lengths[lo:hi],
            ts=ts[heads[lo] : heads[hi]],
            pos=pos[heads[lo] : heads[hi]],
            values=values[heads[lo] : heads[hi]],
            fill_gaps=fill_gaps,
            calendar=calendar,
            first_step=first_step[lo:hi] if first_step is not None else None,
        )
        for lo, hi in chunk_ranges(len(lengths), per_series)
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


__all__ = ["NAT", "SECONDS_PER_ROW", "ChunkChecks", "SeriesChunk", "check_chunk", "check_series"]
