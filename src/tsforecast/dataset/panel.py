"""The one prepared format: many series (S >= 1; one series is a panel of one) as flat arrays.

The long frame (id, timestamp, target, covariates) becomes one contiguous float32 buffer
``values`` (rows, C) with the series one after another, and ``offsets`` (S+1,): series ``i``
is ``values[offsets[i]:offsets[i+1]]``. Everything per series is an array over series
(split bounds (S, 3, 2), scaler mean/std (S, C), window counts), so no Python object and no
Python loop exists per series or per window on the hot path.

Split bounds come from :func:`tsforecast.dataset.split.split_bounds` (fractions of each series'
own length, or row counts anchored at its start or its end). With ``split.inputs_look_back``
val/test windows may read their inputs from earlier rows. A window starting at local row ``s``
reads rows ``[s, s+L)`` and predicts ``[s+L, s+L+H)``; it never leaves its series. Scalers are
fitted on each series' own train rows and applied when a batch is gathered, so ``values`` keeps
the raw data (exact actuals for scoring).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.split import (
    MAX_NAMED,
    PARTS,
    Anchor,
    name_series,
    needed_rows,
    split_bounds,
    split_rows,
    too_short_error,
)
from tsforecast.errors import DataError
from tsforecast.io import atomic_dir, read_json, recover_dir, write_json

log = logging.getLogger(__name__)

VALUES_FILE = "values.npy"
ARRAYS_FILE = "arrays.npz"
IDS_FILE = "ids.parquet"
META_FILE = "meta.json"


@dataclass(frozen=True)
class WindowRanges:
    """The windows of one part, per series: starts ``first + k * step`` for ``k < count``."""

    first: np.ndarray  # (S,) int64, local row of the first window's start
    count: np.ndarray  # (S,) int64, windows in the series (0: none)
    step: int

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def starts(self, series_idx: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Local start rows of window ``k`` of series ``series_idx`` (arrays of one shape)."""
        return self.first[series_idx] + np.asarray(k, dtype=np.int64) * self.step

    def index(self) -> np.ndarray:
        """Every window as rows ``(series_idx, start)``: (K, 2) int64, series-major, vectorised."""
        count = self.count
        s = np.repeat(np.arange(count.size, dtype=np.int64), count)  # (K,)
        begin = np.cumsum(count) - count  # index of each series' first window
        k = np.arange(s.size, dtype=np.int64) - begin[s]
        return np.stack([s, self.first[s] + k * self.step], axis=1)


@dataclass(frozen=True)
class Panel:
    """Many series in one buffer, with per-series split bounds and scalers (see the module doc)."""

    ids: pd.Index  # (S,) series ids, in input order of first appearance
    columns: tuple[str, ...]  # target first, then covariates
    values: np.ndarray  # (rows, C) float32, raw (unscaled)
    offsets: np.ndarray  # (S+1,) int64
    bounds: np.ndarray  # (S, 3, 2) int64: local [start, end) of train, val, test
    mean: np.ndarray  # (S, C) float64, over each series' train rows
    std: np.ndarray  # (S, C) float64 (population, ddof=0)
    first: np.ndarray  # (S,) datetime64[ns]: each series' first timestamp
    freq: str
    input_size: int
    horizon: int
    stride: int
    look_back: bool
    timestamp_column: str = "timestamp"  # the long frame's, recorded for serving
    id_column: str | None = None  # the data's id column (None: one series under the implicit id)

    @property
    def n_series(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def series(self, i: int) -> np.ndarray:
        """Series ``i``'s raw rows (n_i, C): a view of the buffer."""
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def histories(
        self, a: int = 0, b: int | None = None, before: str | None = None, column: int = 0
    ) -> list[np.ndarray]:
        """Raw ``column`` of series ``a..b-1`` as views, cut before part ``before`` if given.

        E.g. the in-sample histories of the test part for M4 scoring: ``histories(before="test")``.
        """
        b = self.n_series if b is None else b
        ends = (
            self.offsets[a + 1 : b + 1]
            if before is None
            else self.offsets[a:b] + self.part_bounds(before)[a:b, 0]
        )
        return [self.values[lo:hi, column] for lo, hi in zip(self.offsets[a:b], ends, strict=True)]

    def timestamps(self, i: int) -> pd.DatetimeIndex:
        return pd.date_range(self.first[i], periods=int(self.lengths[i]), freq=self.freq)

    def part_bounds(self, part: str) -> np.ndarray:
        """(S, 2) local ``[start, end)`` of ``part`` in each series."""
        return self.bounds[:, _part(part)]

    def train_through(self, part: str) -> Panel:
        """This panel with each series' train part running to the end of ``part`` (a refit's data);
        the scalers stay the train rows' ones, so the scaled axis does not move."""
        bounds = self.bounds.copy()
        bounds[:, 0, 1] = self.part_bounds(part)[:, 1]
        return replace(self, bounds=bounds)

    def windows(self, part: str) -> WindowRanges:
        """Per-series window ranges of ``part``: train windows lie wholly in the train rows (every
        ``stride``-th); val/test windows, stride 1, have their targets in their part, and their
        inputs too unless ``look_back``."""
        L, H = self.input_size, self.horizon
        b = self.part_bounds(part)
        first = b[:, 0] - L if (part != "train" and self.look_back) else b[:, 0].copy()
        first = np.maximum(first, 0)
        last = b[:, 1] - L - H  # inclusive
        step = self.stride if part == "train" else 1
        count = np.where(last >= first, (last - first) // step + 1, 0)
        return WindowRanges(first=first.astype(np.int64), count=count.astype(np.int64), step=step)

    def window_index(self, part: str) -> np.ndarray:
        """(K, 2) int64 ``(series_idx, start)`` of every window of ``part``."""
        return self.windows(part).index()

    def gather(
        self, series_idx: np.ndarray, starts: np.ndarray, scaled: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Inputs (B, L, C) and targets (B, H) of the windows at local ``starts`` of ``series_idx``.

        Copies only the B windows' rows (works on a memory-mapped buffer); with ``scaled``
        each window is standardised with its own series' train mean and std.
        """
        s = np.asarray(series_idx, dtype=np.int64)
        st = np.asarray(starts, dtype=np.int64)
        L, H = self.input_size, self.horizon
        if s.shape != st.shape or s.ndim != 1:
            raise ValueError(f"series_idx {s.shape} and starts {st.shape} must be 1-D of one length")
        if s.size and (
            s.min() < 0 or s.max() >= self.n_series or st.min() < 0 or (st + L + H > self.lengths[s]).any()
        ):
            raise IndexError(
                "a window lies outside its series; take indices from window_index() or a sampler"
            )
        rows = (self.offsets[s] + st)[:, None] + np.arange(L + H)  # (B, L+H)
        block = self.values[rows]  # (B, L+H, C) float32, a copy of B windows only
        if scaled:
            f32 = np.float32
            block = (block - self.mean[s, None, :].astype(f32)) / self.std[s, None, :].astype(f32)
        return block[:, :L], block[:, L:, 0]  # (B, L, C), (B, H)

    def last_inputs(self, scaled: bool = True) -> np.ndarray:
        """The last ``input_size`` rows of every series, (S, L, C): the inputs of the forecast."""
        L = self.input_size
        if (self.lengths < L).any():
            raise IndexError(f"a series is shorter than input_size={L}")
        rows = (self.offsets[1:] - L)[:, None] + np.arange(L)  # (S, L)
        block = self.values[rows]  # (S, L, C)
        if scaled:
            f32 = np.float32
            block = (block - self.mean[:, None, :].astype(f32)) / self.std[:, None, :].astype(f32)
        return block

    def inverse_target(self, series_idx: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Undo the target scaling of ``y`` (B, ...) row by row, with each row's series scaler."""
        s = np.asarray(series_idx, dtype=np.int64)
        shape = (-1,) + (1,) * (np.ndim(y) - 1)
        return y * self.std[s, 0].reshape(shape) + self.mean[s, 0].reshape(shape)


def _part(part: str) -> int:
    if part not in PARTS:
        raise ValueError(f"part {part!r} is not one of {PARTS}")
    return PARTS.index(part)


def _ts_ints(ts: pd.Series) -> np.ndarray:
    """Timestamps as int64 ticks of their own unit (only their order is used), no copy if possible."""
    arr = ts.to_numpy()
    if arr.dtype.kind == "M":
        return arr.view(np.int64)
    return pd.DatetimeIndex(ts).as_unit("ns").asi8  # tz-aware or object: UTC instants


def factorize_ids(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Codes and ids in order of first appearance; a categorical whose series come in runs is
    mapped without hashing (the usual sorted long frame)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        raw = col.cat.codes.to_numpy()
        if raw.size and (raw >= 0).all():
            heads = np.concatenate([[0], np.flatnonzero(raw[1:] != raw[:-1]) + 1])
            run_codes = raw[heads]
            if np.unique(run_codes).size == run_codes.size:  # each series in one run
                remap = np.full(len(col.cat.categories), -1, dtype=np.int64)
                remap[run_codes] = np.arange(run_codes.size)
                return remap[raw], pd.Index(col.cat.categories[run_codes])
    codes, uniques = pd.factorize(col, sort=False)
    return codes, pd.Index(uniques)


def _group_rows(
    frame: pd.DataFrame, id_column: str, ts_column: str
) -> tuple[pd.Index, np.ndarray | None, np.ndarray]:
    """Series ids (first-appearance order), the row order grouping series in time order (None: the
    frame is already), and each series' length. Duplicate timestamps fail naming every series."""
    codes, uniques = factorize_ids(frame[id_column])
    if (codes < 0).any():
        raise DataError(
            f"{id_column!r} holds {int((codes < 0).sum())} missing ids; every row needs a series id"
        )
    ts = _ts_ints(frame[ts_column])
    grouped = bool((codes[1:] >= codes[:-1]).all())
    order = None
    if not (grouped and ((ts[1:] > ts[:-1]) | (codes[1:] != codes[:-1])).all()):
        order = np.lexsort((ts, codes))  # by series (first appearance), then time
        c, t = codes[order], ts[order]
        dup = (c[1:] == c[:-1]) & (np.diff(t) <= 0)
        if dup.any():
            bad = np.unique(c[1:][dup])
            names = name_series([str(uniques[i]) for i in bad[:MAX_NAMED]], bad.size)
            raise DataError(
                f"series {names}: a timestamp appears twice within the series; timestamps must be "
                "unique per series - drop or aggregate duplicates (run validate first)"
            )
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    return pd.Index(uniques, name=id_column), order, lengths


def _fit_scalers(values: np.ndarray, offsets: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (S, C) of each series' train rows ``train`` (S, 2, local), two-pass, float64.

    Each series' train rows are one contiguous segment, so the train rows are picked with one
    boolean mask (built from segment edges) and summed with ``np.add.reduceat``.
    """
    start, end = offsets[:-1] + train[:, 0], offsets[:-1] + train[:, 1]
    n_train = (end - start).astype(np.float64)  # every series has train rows (checked before)
    edge = np.zeros(values.shape[0] + 1, dtype=np.int32)
    np.add.at(edge, start, 1)
    np.add.at(edge, end, -1)
    mask = np.cumsum(edge[:-1], dtype=np.int32) > 0  # (rows,) in a train segment
    sub = values[mask].astype(np.float64)  # (train rows, C), series after series
    seg = np.concatenate([[0], np.cumsum(end - start)[:-1]])  # each series' first row in sub
    mean = np.add.reduceat(sub, seg, axis=0) / n_train[:, None]
    sub -= np.repeat(mean, (end - start), axis=0)
    sub *= sub
    std = np.sqrt(np.add.reduceat(sub, seg, axis=0) / n_train[:, None])
    return mean, std


def _freq_of(
    frame: pd.DataFrame, ts_column: str, order: np.ndarray | None, lengths: np.ndarray, freq: str | None
) -> str:
    """``freq`` as an offset alias, or the one pandas infers from the first series' first rows."""
    if freq and freq != "auto":
        return to_offset(freq).freqstr
    rows = np.arange(min(int(lengths[0]), 1000))
    first = pd.DatetimeIndex(frame[ts_column].to_numpy()[rows if order is None else order[rows]])
    guess = None
    if len(first) >= 3:
        with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return offsets
            warnings.simplefilter("ignore")
            guess = pd.infer_freq(first)
    if guess is None:
        raise DataError(
            f"cannot infer the frequency of {ts_column!r} from the first series; set data.freq (e.g. 'h')"
        )
    return to_offset(guess).freqstr


def _constant_error(ids: pd.Index, columns: list[str], flat: np.ndarray) -> DataError:
    """The columns constant over their train rows (``flat`` (S, C)), and in a panel which series."""
    names = [columns[c] for c in np.flatnonzero(flat.any(axis=0))]
    where = ""
    if len(ids) > 1:  # many series name theirs; one series reads as it always has
        bad = np.flatnonzero(flat.any(axis=1))
        items = [
            f"{ids[s]!s} ({', '.join(columns[c] for c in np.flatnonzero(flat[s]))})" for s in bad[:MAX_NAMED]
        ]
        where = f" of series {name_series(items, bad.size)}"
    return DataError(
        f"column(s) {names} are constant over the train rows (std=0){where}; a constant series "
        "cannot be scaled or forecast - check data.target and data.covariates"
        + (", or drop these series" if where else "")
    )


def build_panel(
    frame: pd.DataFrame,
    *,
    id_column: str,
    timestamp_column: str,
    columns: list[str],
    split: SplitConfig,
    window: WindowConfig,
    freq: str | None = None,
    anchor: Anchor = "end",
) -> Panel:
    """The panel of a validated long frame: grouped rows, split bounds, scalers (see the module doc).

    ``columns``: target first, then covariates. Series too short for the split and window fail
    together in one :class:`PanelTooShortError` (one series: the sizes of its parts); constant train
    rows fail naming the columns (and, in a panel, the series).
    """
    missing = [c for c in [id_column, timestamp_column, *columns] if c not in frame.columns]
    if missing:
        raise DataError(f"column(s) {missing} not found; the frame has {list(frame.columns)}")
    if frame.empty:
        raise DataError("the frame has no rows; a panel needs at least one series")
    ids, order, lengths = _group_rows(frame, id_column, timestamp_column)
    bounds, short = split_bounds(lengths, split, window, anchor)
    if short.any():
        if len(ids) == 1:  # one series reads as validate says it: the sizes of its parts
            split_rows(int(lengths[0]), split, window)
        raise too_short_error(ids, lengths, short, needed_rows(split, window))
    values = frame[columns].to_numpy(dtype=np.float32)  # (rows, C)
    values = np.ascontiguousarray(values if order is None else values[order])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        rep = np.repeat(np.arange(len(ids)), lengths)
        bad = np.unique(rep[~finite])
        raise DataError(
            f"series {', '.join(str(ids[i]) for i in bad)} hold NaN or inf in {columns}; "
            "fill or drop missing values (validate with data.fill_gaps) first"
        )
    mean, std = _fit_scalers(values, offsets, bounds[:, 0])
    flat = ~(np.isfinite(std) & (std >= 1e-12))  # (S, C)
    if flat.any():
        raise _constant_error(ids, columns, flat)
    heads = offsets[:-1] if order is None else order[offsets[:-1]]
    ts = frame[timestamp_column].to_numpy()[heads]
    panel = Panel(
        ids=ids,
        columns=tuple(columns),
        values=values,
        offsets=offsets,
        bounds=bounds,
        mean=mean,
        std=std,
        first=pd.DatetimeIndex(ts).as_unit("ns").to_numpy(),
        freq=_freq_of(frame, timestamp_column, order, lengths, freq),
        input_size=window.input_size,
        horizon=window.horizon,
        stride=window.stride,
        look_back=split.inputs_look_back,
        timestamp_column=timestamp_column,
        id_column=id_column,
    )
    log.info(
        "panel: %d series, %d rows, %d train windows",
        panel.n_series,
        offsets[-1],
        panel.windows("train").total,
    )
    return panel


def save_panel(panel: Panel, folder: str | Path) -> None:
    """Write the panel to ``folder`` atomically (npy + npz + parquet + json)."""
    with atomic_dir(folder) as tmp:
        np.save(tmp / VALUES_FILE, panel.values)
        np.savez(
            tmp / ARRAYS_FILE,
            offsets=panel.offsets,
            bounds=panel.bounds,
            mean=panel.mean,
            std=panel.std,
            first=panel.first.astype("datetime64[ns]").view(np.int64),
        )
        pd.DataFrame({panel.ids.name or "id": panel.ids}).to_parquet(tmp / IDS_FILE, index=False)
        write_json(
            tmp / META_FILE,
            {
                "columns": list(panel.columns),
                "n_series": panel.n_series,
                "n_rows": int(panel.offsets[-1]),
                "freq": panel.freq,
                "input_size": panel.input_size,
                "horizon": panel.horizon,
                "stride": panel.stride,
                "look_back": panel.look_back,
                "timestamp_column": panel.timestamp_column,
                "id_column": panel.id_column,
                "n_windows": {p: panel.windows(p).total for p in PARTS},
            },
        )


def _read_ids(path: Path) -> pd.Index:
    col = pd.read_parquet(path).iloc[:, 0]
    return pd.Index(col, name=col.name)


def load_panel(folder: str | Path, mmap: bool = True) -> Panel:
    """Read what :func:`save_panel` wrote; ``mmap`` maps the value buffer instead of reading it."""
    folder = Path(folder)
    recover_dir(folder, clean=False)
    if not (folder / VALUES_FILE).is_file():
        raise DataError(
            f"{folder / VALUES_FILE} not found; build the panel (the window stage) first: "
            "run `tsforecast window` (or `dvc repro window`)"
        )
    meta = read_json(folder / META_FILE)
    with np.load(folder / ARRAYS_FILE) as a:
        arrays = {k: a[k] for k in a.files}
    return Panel(
        ids=_read_ids(folder / IDS_FILE),
        columns=tuple(meta["columns"]),
        values=np.load(folder / VALUES_FILE, mmap_mode="r" if mmap else None),
        offsets=arrays["offsets"],
        bounds=arrays["bounds"],
        mean=arrays["mean"],
        std=arrays["std"],
        first=arrays["first"].view("datetime64[ns]"),
        freq=meta["freq"],
        input_size=meta["input_size"],
        horizon=meta["horizon"],
        stride=meta["stride"],
        look_back=meta["look_back"],
        timestamp_column=meta.get("timestamp_column", "timestamp"),
        id_column=meta.get("id_column"),
    )


__all__ = [
    "Panel",
    "WindowRanges",
    "build_panel",
    "factorize_ids",
    "load_panel",
    "save_panel",
]
