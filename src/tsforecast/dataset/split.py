"""Chronological splits: per-series bounds of train, val and test, the rows a window needs, and
the too-short report.

Split semantics follow :class:`~tsforecast.config.SplitConfig` inside each series: fractions of the
series' own length (rounded down, from its first row), or row counts. Counts are anchored at each
series' *end* by default (test = its last ``split.test`` rows, val the ``split.val`` before them,
train every row before val and at least ``split.train`` rows: the M4 protocol) or, with
``anchor="start"``, counted from the first row (the long-horizon literature's protocol). Train
needs ``input_size + horizon`` rows; val and test need ``horizon`` rows when their inputs look
back into the rows before them (``split.inputs_look_back``), else ``input_size + horizon``.

One arithmetic (:func:`split_bounds`, over an array of series lengths) serves every caller;
:func:`split_rows` is one series' view of it with the error that validate shows for one series.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.errors import DataError

PARTS = ("train", "val", "test")
MAX_NAMED = 20  # series ids named in one error line; the rest are counted
Anchor = Literal["start", "end"]


class PanelTooShortError(DataError):
    """Some series are too short for the split and the window; ``short`` maps id -> length."""

    def __init__(self, message: str, short: dict[object, int], need: int) -> None:
        super().__init__(message)
        self.short = short
        self.need = need


def _window_needs(split: SplitConfig, window: WindowConfig) -> np.ndarray:
    """(3,) rows each part needs for one window: train ``L+H``; val and test ``H`` or ``L+H``."""
    L, H = window.input_size, window.horizon
    need_eval = H if split.inputs_look_back else L + H
    return np.array([L + H, need_eval, need_eval], dtype=np.int64)


def _small_counts(split: SplitConfig, window: WindowConfig) -> list[str]:
    """``part=count`` of each row count too small to hold one window (none for fractions)."""
    if not split.uses_counts:
        return []
    counts = (int(split.train), int(split.val), int(split.test))
    needs = _window_needs(split, window)
    return [f"{p}={v}" for p, v, k in zip(PARTS, counts, needs, strict=True) if v < k]


def _sizes(n: np.ndarray, split: SplitConfig, anchor: Anchor) -> np.ndarray:
    """(S, 3) rows of train, val and test in series of lengths ``n`` (S,)."""
    if not split.uses_counts:  # fractions of each series' own length, rounded down
        frac = np.array([split.train, split.val, split.test], dtype=np.float64)
        return np.floor(n[:, None] * frac[None, :]).astype(np.int64)
    counts = np.array([split.train, split.val, split.test], dtype=np.int64)
    sizes = np.repeat(counts[None, :], n.size, axis=0)
    if anchor == "end":  # train: every row before val
        sizes[:, 0] = np.maximum(n - counts[1] - counts[2], 0)
    return sizes


def _short(n: np.ndarray, sizes: np.ndarray, split: SplitConfig, window: WindowConfig) -> np.ndarray:
    """(S,) bool: the parts do not fit in the series, or one is too small for its windows."""
    needs = _window_needs(split, window)
    if split.uses_counts:  # anchored at the end, train still holds at least split.train rows
        needs[0] = max(int(needs[0]), int(split.train))
    return (sizes < needs).any(axis=1) | (sizes.sum(axis=1) > n)


def _edges(sizes: np.ndarray) -> np.ndarray:
    """(S, 3, 2) ``[start, end)`` of consecutive parts of ``sizes`` (S, 3)."""
    edges = np.concatenate([np.zeros((sizes.shape[0], 1), np.int64), np.cumsum(sizes, axis=1)], axis=1)
    return np.stack([edges[:, :-1], edges[:, 1:]], axis=2)


def split_bounds(
    lengths: np.ndarray, split: SplitConfig, window: WindowConfig, anchor: Anchor = "end"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-series bounds (S, 3, 2) and a bool mask (S,) of series too short for split + window."""
    small = _small_counts(split, window)
    if small:
        raise DataError(
            f"split row counts {', '.join(small)} are too small for the window: "
            f"{required_rows(split, window)}; raise split.* or lower window.input_size/horizon"
        )
    n = np.asarray(lengths, dtype=np.int64).reshape(-1)
    sizes = _sizes(n, split, anchor)
    return _edges(sizes), _short(n, sizes, split, window)


def required_rows(split: SplitConfig, window: WindowConfig) -> str:
    """A human sentence of what the split and window need, for error messages."""
    need_train, need_eval, _ = (int(k) for k in _window_needs(split, window))
    return (
        f"train needs >= input_size+horizon = {need_train} rows and val and test >= {need_eval} rows each"
        + ("" if split.inputs_look_back else " (their inputs do not look back; split.lookback)")
    )


def needed_rows(split: SplitConfig, window: WindowConfig) -> int:
    """The fewest rows a series needs for the split and the window."""
    if split.uses_counts:
        return int(split.train + split.val + split.test)
    frac = np.array([split.train, split.val, split.test], dtype=np.float64)
    guess = int(np.ceil((_window_needs(split, window) / frac).max()))
    n = np.arange(max(guess - 2, 1), guess + 3, dtype=np.int64)  # n*f is exact to within a row
    fits = ~_short(n, _sizes(n, split, "start"), split, window)
    return int(n[fits][0])


def min_rows(split: SplitConfig, window: WindowConfig) -> int | None:
    """The fewest rows a series needs, or None when the row counts cannot hold a window at all."""
    return None if _small_counts(split, window) else needed_rows(split, window)


def split_rows(n_rows: int, split: SplitConfig, window: WindowConfig) -> np.ndarray:
    """One series' bounds (3, 2), counted from its first row; fails naming the sizes when a part
    is too small (the message validate shows for one series)."""
    n = np.array([n_rows], dtype=np.int64)
    sizes = _sizes(n, split, "start")
    n_train, n_val, n_test = (int(s) for s in sizes[0])
    total = n_train + n_val + n_test
    if total > n_rows:
        raise DataError(
            f"split asks for train={n_train} + val={n_val} + test={n_test} = {total} rows "
            f"but the series has {n_rows}; lower split.* or bring more data"
        )
    problems = [
        f"{p} has {int(s)} rows"
        for p, s, k in zip(PARTS, sizes[0], _window_needs(split, window), strict=True)
        if s < k
    ]
    if problems:
        L, H = window.input_size, window.horizon
        if split.uses_counts:
            hint = f"raise the row counts (at least {int(_window_needs(split, window).sum())} rows in all)"
        else:
            need = needed_rows(split, window)
            hint = f"with these fractions the series needs at least {need} rows, it has {n_rows}"
        raise DataError(
            f"not enough rows for the split and the window: {', '.join(problems)}; "
            f"{required_rows(split, window)} (window.input_size={L}, window.horizon={H}); {hint}"
        )
    return _edges(sizes)[0]


def name_series(items: list[str], total: int | None = None, limit: int = MAX_NAMED) -> str:
    """``a, b, c`` or, past ``limit`` items, the first ``limit`` and ``and N more``."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:limit])
    return shown + (f" and {total - min(len(items), limit)} more" if total > limit else "")


def too_short_error(ids: pd.Index, lengths: np.ndarray, short: np.ndarray, need: int) -> PanelTooShortError:
    """One error naming the series that are too short (the first :data:`MAX_NAMED`, then a
    count), with their lengths and the length needed; ``.short`` maps every one of them."""
    bad = np.flatnonzero(short)
    listed = {ids[i]: int(lengths[i]) for i in bad}
    items = name_series([f"{ids[i]!s} ({int(lengths[i])} rows)" for i in bad[:MAX_NAMED]], bad.size)
    return PanelTooShortError(
        f"{bad.size} of {len(ids)} series are too short for the split and the window: each needs at "
        f"least {need} rows; too short: {items}. Drop these series, bring more history, or lower "
        "window.input_size/horizon or split.*",
        listed,
        need,
    )


__all__ = [
    "MAX_NAMED",
    "PARTS",
    "Anchor",
    "PanelTooShortError",
    "min_rows",
    "name_series",
    "needed_rows",
    "required_rows",
    "split_bounds",
    "split_rows",
    "too_short_error",
]
