"""Infer the frequency of a series from its timestamps, gaps and all (``data.freq: auto``).

``pd.infer_freq`` answers only for a gap-free index. With gaps, the most common step alone
is not enough: months step by 28-31 days, business days by 1 or 3, so "the most common
step" of monthly data is ``31D``, a grid most months lie off. Instead a few candidate
offsets are tried against the timestamps (what ``pd.infer_freq`` says about the longest
gap-free run, the calendar offsets of that step's size, and the fixed step itself), and the
one on whose grid the most timestamps lie wins; among equals, the grid with the fewest
steps (the fewest missing ones). Gaps then show up as missing steps of that grid.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

__all__ = ["infer_offset", "modal_step", "offset_of_step"]

DAY = pd.Timedelta(days=1)
MONTH_DAYS = 365.2425 / 12  # mean Gregorian month
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
RUN_BREAK = 1.5  # a step longer than this many most-common steps ends a gap-free run


def offset_of_step(step: pd.Timedelta) -> BaseOffset:
    """A pandas offset for a fixed step; whole days become calendar days (DST-safe)."""
    if step % DAY == pd.Timedelta(0):
        return to_offset(f"{step // DAY}D")
    return to_offset(step)


def modal_step(ts: pd.Series | pd.DatetimeIndex) -> tuple[pd.Timedelta, int]:
    """The most common step between consecutive timestamps and how often it occurs (ties: the finer)."""
    diffs = pd.Series(pd.DatetimeIndex(ts)).diff().iloc[1:]
    counts = diffs.value_counts()
    top = counts.max()
    step = min(counts[counts == top].index)
    return pd.Timedelta(step), int(top)


def _pandas_freq(idx: pd.DatetimeIndex) -> BaseOffset | None:
    """``pd.infer_freq`` of ``idx`` as an offset, or None when pandas finds none."""
    if len(idx) < 3:
        return None
    with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return offsets
        warnings.simplefilter("ignore")
        try:
            guess = pd.infer_freq(idx)
        except (TypeError, ValueError):
            return None
    return to_offset(guess) if guess is not None else None


def _longest_run(idx: pd.DatetimeIndex, step: pd.Timedelta) -> pd.DatetimeIndex:
    """The longest stretch of ``idx`` with no step longer than ``RUN_BREAK`` most-common steps."""
    breaks = np.flatnonzero(np.diff(idx.as_unit("ns").asi8) > RUN_BREAK * step.value)  # a run ends at each
    bounds = np.concatenate([[0], breaks + 1, [len(idx)]])
    k = int(np.argmax(np.diff(bounds)))
    return idx[bounds[k] : bounds[k + 1]]


def _n(n: int) -> str:
    return "" if n == 1 else str(n)


def _calendar_candidates(first: pd.Timestamp, step: pd.Timedelta) -> list[str]:
    """Calendar offsets whose steps are about ``step`` long, anchored where ``first`` lies."""
    days = step / DAY
    out: list[str] = []
    if step == DAY:
        out.append("B")
    if step == 7 * DAY:
        out.append(f"W-{first.day_name()[:3].upper()}")
    if 13 <= days <= 17:  # twice a month: the 1st and 15th, or the 15th and the month's end
        out += ["SMS", "SME"]
    months = round(days / MONTH_DAYS)
    if months >= 1 and abs(days - months * MONTH_DAYS) <= 3:  # 28-31, 89-92, 365-366 days ...
        m = first.month - 1
        if months % 12 == 0:  # years starting or ending in the first timestamp's month
            n = months // 12
            out += [f"{_n(n)}YS-{MONTHS[m]}", f"{_n(n)}YE-{MONTHS[m]}"]
        if months % 3 == 0:  # quarters, named by their month in Jan-Mar (starts) or Oct-Dec (ends)
            n = months // 3
            out += [f"{_n(n)}QS-{MONTHS[m % 3]}", f"{_n(n)}QE-{MONTHS[9 + m % 3]}"]
        out += [f"{_n(months)}MS", f"{_n(months)}ME"]
    return out


def _fit(idx: pd.DatetimeIndex, offset: BaseOffset) -> tuple[int, int]:
    """How many timestamps of ``idx`` lie on the grid ``offset`` draws from ``idx[0]``, and its size."""
    if isinstance(offset, Tick):
        step = pd.Timedelta(offset).value
        delta = idx.as_unit("ns").asi8 - idx.as_unit("ns").asi8[0]
        return int((delta % step == 0).sum()), int(delta[-1] // step) + 1
    grid = pd.date_range(idx[0], idx[-1], freq=offset)
    return int((grid.get_indexer(idx) >= 0).sum()), len(grid)


def infer_offset(ts: pd.Series | pd.DatetimeIndex) -> BaseOffset:
    """The frequency of ``ts`` (sorted, unique, at least 2 timestamps), robust to gaps.

    ``pd.infer_freq`` when the index has no gap; otherwise the best of: ``pd.infer_freq`` of
    the longest gap-free run, the calendar offsets of the most common step's size (``B``,
    ``W-<day>``, ``MS``/``ME``, ``QS``/``QE``, ``YS``/``YE`` and multiples), and that step as a
    fixed offset (``h``, ``30min``, ``D`` ...). Best: most timestamps on its grid, then fewest
    grid steps, then that order.
    """
    idx = pd.DatetimeIndex(ts)
    whole = _pandas_freq(idx)
    if whole is not None:
        return whole
    step = modal_step(idx)[0]
    candidates: list[BaseOffset] = []
    run = _pandas_freq(_longest_run(idx, step))
    if run is not None:
        candidates.append(run)
    for alias in _calendar_candidates(idx[0], step):
        try:
            candidates.append(to_offset(alias))
        except ValueError:  # an alias this pandas does not know
            continue
    candidates.append(offset_of_step(step))
    best, best_key = candidates[-1], (-1, 0)
    for offset in candidates:
        on, size = _fit(idx, offset)
        if (on, -size) > best_key:
            best, best_key = offset, (on, -size)
    return best
