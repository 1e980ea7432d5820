"""Chronological splits: how many rows train, val and test get, and what a window needs.

Below both ``validate`` (its row-count check) and ``windowing`` (the split it saves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.errors import DataError


@dataclass(frozen=True)
class SplitBounds:
    """Row ranges ``[start, end)`` of each split, and whether val/test inputs look back."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    look_back: bool

    def rows(self, part: str) -> tuple[int, int]:
        return getattr(self, part)


def split_sizes(n_rows: int, split: SplitConfig) -> tuple[int, int, int]:
    """Rows in train, val and test: counts as given, fractions rounded down."""
    if split.uses_counts:
        return int(split.train), int(split.val), int(split.test)
    return int(n_rows * split.train), int(n_rows * split.val), int(n_rows * split.test)


def required_rows(split: SplitConfig, window: WindowConfig, n_rows: int | None = None) -> str:
    """A human sentence of what the split and window need, for error messages."""
    L, H = window.input_size, window.horizon
    per_eval = H if split.inputs_look_back else L + H
    return f"train needs >= input_size+horizon = {L + H} rows and val and test >= {per_eval} rows each" + (
        "" if split.inputs_look_back else " (their inputs do not look back; split.lookback)"
    )


def least_rows(split: SplitConfig, need_train: int, need_eval: int) -> int:
    """The fewest rows whose fraction split, rounded down as ``split_sizes`` does, fits the windows."""

    def fits(n: int) -> bool:
        return all(
            s >= k for s, k in zip(split_sizes(n, split), (need_train, need_eval, need_eval), strict=True)
        )

    n = int(np.ceil(max(need_train / split.train, need_eval / split.val, need_eval / split.test)))
    while n > 1 and fits(n - 1):
        n -= 1
    while not fits(n):
        n += 1
    return n


def split_rows(n_rows: int, split: SplitConfig, window: WindowConfig) -> SplitBounds:
    """Chronological row ranges; fails naming the sizes when a split is too small."""
    n_train, n_val, n_test = split_sizes(n_rows, split)
    total = n_train + n_val + n_test
    if total > n_rows:
        raise DataError(
            f"split asks for train={n_train} + val={n_val} + test={n_test} = {total} rows "
            f"but the series has {n_rows}; lower split.* or bring more data"
        )
    L, H = window.input_size, window.horizon
    look_back = split.inputs_look_back
    need_eval = H if look_back else L + H
    problems = []
    if n_train < L + H:
        problems.append(f"train has {n_train} rows")
    if n_val < need_eval:
        problems.append(f"val has {n_val} rows")
    if n_test < need_eval:
        problems.append(f"test has {n_test} rows")
    if problems:
        if split.uses_counts:
            total_need = (L + H) + 2 * need_eval
            hint = f"raise the row counts (at least {total_need} rows in all)"
        else:
            total_need = least_rows(split, L + H, need_eval)
            hint = f"with these fractions the series needs at least {total_need} rows, it has {n_rows}"
        raise DataError(
            f"not enough rows for the split and the window: {', '.join(problems)}; "
            f"{required_rows(split, window)} (window.input_size={L}, window.horizon={H}); {hint}"
        )
    return SplitBounds(
        train=(0, n_train),
        val=(n_train, n_train + n_val),
        test=(n_train + n_val, total),
        look_back=look_back,
    )


def min_rows(split: SplitConfig, window: WindowConfig) -> int | None:
    """The fewest rows for which ``split_rows`` succeeds, or None when no count will do."""

    def ok(n: int) -> bool:
        try:
            split_rows(n, split, window)
        except DataError:
            return False
        return True

    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > 1 << 48:
            return None
    lo = hi // 2  # not ok (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


__all__ = ["SplitBounds", "least_rows", "min_rows", "required_rows", "split_rows", "split_sizes"]
