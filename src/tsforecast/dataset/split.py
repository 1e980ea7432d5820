"""A panel's split and its too-short report: per-series bounds of train, val and test.

Split semantics follow :class:`~tsforecast.config.SplitConfig` inside each series: fractions
of the series' own length (rounded down, from its first row, as one series does), or row
counts anchored at each series' *end* (test = its last ``split.test`` rows, val the
``split.val`` before them, train every row before val and at least ``split.train`` rows: the
M4 protocol; ``anchor="start"`` counts from the first row as the one-series path does).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.splits import least_rows, required_rows
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


def split_bounds(
    lengths: np.ndarray, split: SplitConfig, window: WindowConfig, anchor: Anchor = "end"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-series bounds (S, 3, 2) and a bool mask (S,) of series too short for split + window."""
    n = np.asarray(lengths, dtype=np.int64)
    L, H = window.input_size, window.horizon
    need_eval = H if split.inputs_look_back else L + H
    if split.uses_counts:
        sizes = np.broadcast_to(np.array([split.train, split.val, split.test], dtype=np.int64), (n.size, 3))
        needs = (L + H, need_eval, need_eval)
        counts = (split.train, split.val, split.test)
        small = [f"{p}={v}" for p, v, k in zip(PARTS, counts, needs, strict=True) if v < k]
        if small:
            raise DataError(
                f"split row counts {', '.join(small)} are too small for the window: "
                f"{required_rows(split, window)}; raise split.* or lower window.input_size/horizon"
            )
    else:  # fractions of each series' own length, rounded down as windowing.split_sizes does
        frac = np.array([split.train, split.val, split.test], dtype=np.float64)
        sizes = np.floor(n[:, None] * frac[None, :]).astype(np.int64)
    if split.uses_counts and anchor == "end":  # train: every row before val (at least split.train)
        sizes = sizes.copy()
        sizes[:, 0] = np.maximum(n - sizes[:, 1] - sizes[:, 2], 0)
        short = sizes[:, 0] < max(int(split.train), L + H)
    else:
        short = (sizes.sum(axis=1) > n) | (sizes[:, 0] < L + H)
    short |= (sizes[:, 1] < need_eval) | (sizes[:, 2] < need_eval)
    edges = np.concatenate([np.zeros((n.size, 1), np.int64), np.cumsum(sizes, axis=1)], axis=1)
    bounds = np.stack([edges[:, :-1], edges[:, 1:]], axis=2)  # (S, 3, 2)
    return bounds, short


def needed_rows(split: SplitConfig, window: WindowConfig) -> int:
    """The fewest rows a series needs for the split and the window."""
    L, H = window.input_size, window.horizon
    need_eval = H if split.inputs_look_back else L + H
    if split.uses_counts:
        return int(split.train + split.val + split.test)
    return least_rows(split, L + H, need_eval)


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
    "name_series",
    "needed_rows",
    "split_bounds",
    "too_short_error",
]
