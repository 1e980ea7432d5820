"""The one-series prepared format that the window stage no longer writes: read-only leftovers.

Kept only because ``forecasting/core.py`` and ``registry/`` (``register``, ``rescore``, ``types``)
and their tests still import these names from :mod:`tsforecast.dataset.window`; the rewrite of
those wings drops them. Delete this module, and the re-export in ``window.py``, with the last
import. Nothing in the dataset wing uses it: the prepared format is :mod:`tsforecast.dataset.panel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsforecast.errors import DataError
from tsforecast.io import read_json, recover_dir
from tsforecast.paths import PREPARED_META, SCALER_FILE, SERIES_FILE, TIMESTAMPS_FILE


@dataclass(frozen=True)
class SplitBounds:
    """Row ranges ``[start, end)`` of each split, and whether val/test inputs look back."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    look_back: bool

    def rows(self, part: str) -> tuple[int, int]:
        return getattr(self, part)


@dataclass(frozen=True)
class StandardScaler:
    """Per-column mean and standard deviation, fit on the train rows only."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str] | None = None) -> StandardScaler:
        """Fit on ``values`` (rows, columns); a constant column is an error."""
        mean = values.mean(axis=0)
        std = values.std(axis=0)
        flat = [i for i, s in enumerate(std) if not np.isfinite(s) or s < 1e-12]
        if flat:
            names = [columns[i] if columns else i for i in flat]
            raise DataError(
                f"column(s) {names} are constant over the train rows (std=0); a constant "
                "series cannot be scaled or forecast - check data.target and data.covariates"
            )
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse_target(self, values: np.ndarray) -> np.ndarray:
        """Undo the scaling of the target (column 0) for any array shape."""
        return values * self.std[0] + self.mean[0]

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> StandardScaler:
        return cls(tuple(d["mean"]), tuple(d["std"]))


def window_starts(bounds: SplitBounds, part: str, L: int, H: int, stride: int = 1) -> np.ndarray:
    """Start rows of the windows of ``part`` (as :meth:`tsforecast.dataset.panel.Panel.windows`)."""
    start, end = bounds.rows(part)
    first = max(start - L if (part != "train" and bounds.look_back) else start, 0)
    last = end - L - H  # inclusive
    step = stride if part == "train" else 1
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, step, dtype=np.int64)


def sliding_windows(series: np.ndarray, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Views ``X`` (N, L, C) and ``Y`` (N, H) of every window of a (rows, columns) series."""
    if series.ndim != 2:
        raise ValueError(f"series must be 2-D (rows, columns), got shape {series.shape}")
    if series.shape[0] < L + H:
        raise DataError(f"series has {series.shape[0]} rows; a window needs L+H = {L + H}")
    v = sliding_window_view(series, L + H, axis=0)  # (N, C, L+H), a view
    return v[:, :, :L].transpose(0, 2, 1), v[:, 0, L:]


@dataclass(frozen=True)
class Prepared:
    """The one-series prepared format: the scaled series and how to cut it."""

    series: np.ndarray  # (rows, 1 + covariates), scaled, float32
    scaler: StandardScaler
    bounds: SplitBounds
    columns: list[str]
    timestamps: pd.DatetimeIndex
    freq: str
    input_size: int
    horizon: int
    stride: int

    def windows(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, X view, Y view) for one split; index ``X[starts]`` for its windows."""
        X, Y = sliding_windows(self.series, self.input_size, self.horizon)
        starts = window_starts(self.bounds, part, self.input_size, self.horizon, self.stride)
        return starts, X, Y


def load_prepared(prepared_dir: Path, mmap: bool = False) -> Prepared:
    """Read a one-series prepared dir (``series.npy``), as the window stage wrote it before the panel."""
    recover_dir(prepared_dir, clean=False)
    path = prepared_dir / SERIES_FILE
    if not path.is_file():
        raise DataError(f"{path} not found; run `tsforecast window` (or `dvc repro window`) first")
    meta = read_json(prepared_dir / PREPARED_META)
    ts = pd.read_parquet(prepared_dir / TIMESTAMPS_FILE).iloc[:, 0]
    b = meta["bounds"]
    return Prepared(
        series=np.load(path, mmap_mode="r" if mmap else None),
        scaler=StandardScaler.from_dict(read_json(prepared_dir / SCALER_FILE)),
        bounds=SplitBounds(tuple(b["train"]), tuple(b["val"]), tuple(b["test"]), meta["look_back"]),
        columns=meta["columns"],
        timestamps=pd.DatetimeIndex(ts),
        freq=meta["freq"],
        input_size=meta["input_size"],
        horizon=meta["horizon"],
        stride=meta["stride"],
    )


__all__ = ["Prepared", "SplitBounds", "StandardScaler", "load_prepared", "sliding_windows", "window_starts"]
