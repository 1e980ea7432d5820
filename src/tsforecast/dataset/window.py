"""Stage ``window``: chronological split, train-fit scaler, sliding windows as views.

Windows are never materialised: :func:`sliding_windows` returns strided views of the
series (numpy ``sliding_window_view``), so a 10-million-point series costs its own
size, not ``input_size`` times it. Batches are gathered from the view when needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.data.validate import read_validated
from tsforecast.dataset.panel_window import PanelWindowResult, window_panel
from tsforecast.dataset.splits import SplitBounds, split_rows
from tsforecast.errors import DataError
from tsforecast.io import atomic_dir, read_json, recover_dir, write_json
from tsforecast.paths import PREPARED_META, SCALER_FILE, SERIES_FILE, TIMESTAMPS_FILE, Paths

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


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
    """Start rows of the windows of ``part``: every target lies inside the split's rows.

    A window starting at ``s`` reads rows ``[s, s+L)`` and predicts rows ``[s+L, s+L+H)``.
    Train windows lie wholly in the train rows; val/test windows' targets lie in their
    split, and their inputs too unless ``bounds.look_back``.
    """
    start, end = bounds.rows(part)
    first = start - L if (part != "train" and bounds.look_back) else start
    first = max(first, 0)
    last = end - L - H  # inclusive
    step = stride if part == "train" else 1
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, step, dtype=np.int64)


def sliding_windows(series: np.ndarray, L: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Views of every input window and every target window of a (rows, columns) series.

    Returns ``X`` of shape (rows-L-H+1, L, C) and ``Y`` of shape (rows-L-H+1, H), both
    views sharing ``series``' memory. The target is column 0.
    """
    if series.ndim != 2:
        raise ValueError(f"series must be 2-D (rows, columns), got shape {series.shape}")
    if series.shape[0] < L + H:
        raise DataError(f"series has {series.shape[0]} rows; a window needs L+H = {L + H}")
    v = sliding_window_view(series, L + H, axis=0)  # (N, C, L+H), a view
    X = v[:, :, :L].transpose(0, 2, 1)  # (N, L, C)
    Y = v[:, 0, L:]  # (N, H)
    return X, Y


@dataclass(frozen=True)
class WindowResult:
    n_rows: int
    n_train: int
    n_val: int
    n_test: int
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int


@dataclass(frozen=True)
class Prepared:
    """What the ``window`` stage wrote: the scaled series and how to cut it."""

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


def run_window(
    data: DataConfig, split: SplitConfig, window: WindowConfig, paths: Paths
) -> WindowResult | PanelWindowResult:
    """Split chronologically, fit the scaler on train rows, save the scaled series.

    A panel (``data.id_column`` set): per series, :func:`tsforecast.dataset.panel_window.window_panel`.
    """
    return window_panel(data, split, window, paths)
    frame, meta = read_validated(paths.validated)  # edge: read
    columns = [data.target, *data.covariates]
    missing = [c for c in [data.timestamp_column, *columns] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{paths.validated}: column(s) {missing} not found; columns are {list(frame.columns)}. "
            "data.* changed since validate ran: run `dvc repro`"
        )
    values = frame[columns].to_numpy(dtype="float64")  # (rows, C)
    bounds = split_rows(len(values), split, window)  # pure
    scaler = StandardScaler.fit(values[slice(*bounds.train)], columns)  # pure: train rows only
    scaled = scaler.transform(values).astype("float32")
    L, H, S = window.input_size, window.horizon, window.stride
    counts = {p: len(window_starts(bounds, p, L, H, S)) for p in PARTS}
    ts = frame[data.timestamp_column]
    out_meta = {
        "columns": columns,
        "n_rows": len(values),
        "bounds": {p: list(bounds.rows(p)) for p in PARTS},
        "look_back": bounds.look_back,
        "input_size": L,
        "horizon": H,
        "stride": S,
        "n_windows": counts,
        "start": str(ts.iloc[0]),
        "end": str(ts.iloc[-1]),
        "freq": meta["freq"],
        "timestamps": [str(t) for t in ts.iloc[[0, -1]]],
    }
    with atomic_dir(paths.prepared) as tmp:  # edge: atomic write
        np.save(tmp / SERIES_FILE, scaled)
        write_json(tmp / SCALER_FILE, scaler.to_dict())
        write_json(tmp / PREPARED_META, out_meta)
        frame[[data.timestamp_column]].to_parquet(tmp / TIMESTAMPS_FILE, index=False)
    log.info("windows: train %d, val %d, test %d", counts["train"], counts["val"], counts["test"])
    return WindowResult(
        n_rows=len(values),
        n_train=bounds.train[1] - bounds.train[0],
        n_val=bounds.val[1] - bounds.val[0],
        n_test=bounds.test[1] - bounds.test[0],
        n_train_windows=counts["train"],
        n_val_windows=counts["val"],
        n_test_windows=counts["test"],
    )


def load_prepared(prepared_dir: Path, mmap: bool = False) -> Prepared:
    """Read what ``run_window`` wrote."""
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


__all__ = [
    "Prepared",
    "SplitBounds",
    "StandardScaler",
    "WindowResult",
    "load_prepared",
    "run_window",
    "sliding_windows",
    "split_rows",
    "window_starts",
]
