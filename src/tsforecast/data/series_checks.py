"""The per-series rules of a panel's validation, vectorised over a chunk of series (pure).

:func:`check_chunk` is what :func:`tsforecast.parallel.map_series` sends to the workers (on
Dask at ``orchestration.dask_address``): a :class:`SeriesChunk` carries every array it needs
(never a path), and the :class:`ChunkChecks` that comes back says, per series, what is wrong
and, when nothing is, the chunk on its grid with its short gaps filled. No Python loop runs
per row or per series; the only loops are over the (few) value columns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

NAT = np.iinfo(np.int64).min  # "no such row" in the per-series first-offender arrays


@dataclass(frozen=True)
class SeriesChunk:
    """Series ``first .. first+len(lengths)-1``, rows sorted by series then time (all a worker needs)."""

    first: int
    lengths: np.ndarray  # (n,) rows of each series
    ts: np.ndarray  # (rows,) int64 instants (ns since the epoch, UTC)
    pos: np.ndarray  # (rows,) int64 grid step from the series' first timestamp; -1: off the grid
    values: np.ndarray  # (rows, C) float64, NaN = empty cell
    fill_gaps: int


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
    flat: np.ndarray  # (n,) bool: the target has one value (NaN aside)
    flat_value: np.ndarray  # (n,) that value
    size: np.ndarray  # (n,) steps of the series' grid (its row count when its grid is unusable)
    filled: np.ndarray  # (n,) grid steps that were filled
    values: np.ndarray | None  # (sum(size), C) float64 on the grid, gaps filled

    @property
    def bad(self) -> np.ndarray:
        """(n,) bool: the series breaks a rule (its length is checked later)."""
        return (self.dup > 0) | (self.off > 0) | (self.inf > 0).any(1) | (self.long > 0).any(1) | self.flat


def _first_per_series(rows: np.ndarray, seg: np.ndarray, n: int, value: np.ndarray) -> np.ndarray:
    """``value`` at the first of ``rows`` (sorted) in each series, NAT where a series has none."""
    out = np.full(n, NAT, dtype=np.int64)
    series, first = np.unique(seg[rows], return_index=True)
    out[series] = value[rows[first]]
    return out


def _interpolate(col: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``col`` (G,) with NaN filled linearly between the nearest values of the same segment
    ``[lo, hi)`` (per row); at a segment's edge the nearest value is repeated. Vectorised."""
    idx = np.arange(col.size)
    valid = ~np.isnan(col)
    prev = np.maximum.accumulate(np.where(valid, idx, -1))
    nxt = np.minimum.accumulate(np.where(valid, idx, col.size)[::-1])[::-1]
    has_prev, has_next = prev >= lo, nxt < hi
    p, q = np.where(has_prev, prev, 0), np.where(has_next, nxt, 0)
    both = has_prev & has_next & (q > p)
    weight = np.where(both, (idx - p) / np.where(both, q - p, 1), 0.0)
    linear = col[p] + (col[q] - col[p]) * weight
    return np.where(valid, col, np.where(both, linear, np.where(has_prev, col[p], col[q])))


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
    flat = (lo == hi) & np.isfinite(lo)
    # the grid of every series whose timestamps are sound: step 0 .. its last row's step
    sound = (dup == 0) & (off == 0)
    size = np.where(sound, pos[heads + lengths - 1] + 1, lengths).astype(np.int64)
    used = np.where(sound, size, 0)
    out_head = np.cumsum(used) - used
    keep = sound[seg]
    dest = out_head[seg[keep]] + pos[keep]  # (kept rows,) row on the grid
    gseg = np.repeat(np.arange(n), used)  # (G,) series of each grid step
    g_lo, g_hi = out_head[gseg], (out_head + used)[gseg]
    long, long_step, long_len = (np.zeros((n, C), np.int64) for _ in range(3))
    missing_any = np.zeros(gseg.size, dtype=bool)
    grid = np.full((gseg.size, C), np.nan)
    grid[dest] = values[keep]
    for c in range(C):
        miss = np.isnan(grid[:, c])
        missing_any |= miss
        starts = np.flatnonzero(miss & ((np.arange(miss.size) == g_lo) | ~np.roll(miss, 1)))
        ends = np.flatnonzero(miss & ((np.arange(miss.size) == g_hi - 1) | ~np.roll(miss, -1)))
        run = ends - starts + 1  # one run per start, in order (runs never span series)
        whole = run == (g_hi - g_lo)[starts]  # no value in the series to fill from
        is_long = (run > chunk.fill_gaps) | whole
        s = gseg[starts[is_long]]
        long[:, c] = np.bincount(s, minlength=n)
        first = np.unique(s, return_index=True)
        long_step[first[0], c] = (starts[is_long] - g_lo[starts[is_long]])[first[1]]
        long_len[first[0], c] = run[is_long][first[1]]
    filled = np.bincount(gseg[missing_any], minlength=n)
    checks = dict(
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
        flat=flat,
        flat_value=np.where(flat, lo, np.nan),
        size=size,
        filled=filled,
        values=None,
    )
    result = ChunkChecks(**checks)
    if result.bad.any():
        return result
    for c in range(C):
        if np.isnan(grid[:, c]).any():
            grid[:, c] = _interpolate(grid[:, c], g_lo, g_hi)
    return ChunkChecks(**{**checks, "values": grid})


__all__ = ["NAT", "ChunkChecks", "SeriesChunk", "check_chunk"]
