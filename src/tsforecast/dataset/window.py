"""Stage ``window``: the validated long frame -> the panel in ``data/prepared/``.

One series is a panel of one, under the implicit id (:mod:`tsforecast.dataset.long`). Each series
is split chronologically on its own (:mod:`tsforecast.dataset.split`: fractions of its length, or
row counts anchored per ``split.anchor``: at its start for one series, at its end for many), gets
a scaler fitted on its own train rows, and its windows never leave it. ``data/prepared/`` holds
what :func:`tsforecast.dataset.panel.save_panel` writes; windows are never materialised, they are
per-series ranges (:meth:`~tsforecast.dataset.panel.Panel.windows`) gathered batch by batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.data.validate import read_validated
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.dataset.panel import PARTS, build_panel, save_panel
from tsforecast.errors import DataError
from tsforecast.paths import Paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowResult:
    n_series: int
    n_rows: int
    n_train: int  # rows, summed over the series
    n_val: int
    n_test: int
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int


def run_window(data: DataConfig, split: SplitConfig, window: WindowConfig, paths: Paths) -> WindowResult:
    """Split each series chronologically, fit its scaler on its train rows, save the panel (atomically)."""
    frame, meta = read_validated(paths.validated)  # edge: read
    if meta.get("id_column") != data.id_column:
        raise DataError(
            f"{paths.validated} was validated with id_column={meta.get('id_column')!r}, params say "
            f"data.id_column={data.id_column!r}; run `dvc repro` (or `tsforecast validate`) first"
        )
    columns = [data.target, *data.covariates]
    missing = [c for c in [data.timestamp_column, *columns] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{paths.validated}: column(s) {missing} not found; columns are {list(frame.columns)}. "
            "data.* changed since validate ran: run `dvc repro`"
        )
    frame = with_series_id(frame, data)  # one series is a panel of one
    n_series = int(frame[id_column(data)].nunique())
    split = split.resolved(n_series, window.input_size, window.horizon)  # auto: by the number of series
    panel = build_panel(  # pure
        frame,
        id_column=id_column(data),
        timestamp_column=data.timestamp_column,
        columns=columns,
        split=split,
        window=window,
        freq=meta["freq"],
        anchor=split.anchor_for(n_series),
    )
    panel = replace(panel, id_column=data.id_column)  # None: one series, under the implicit id
    save_panel(panel, paths.prepared)  # edge: atomic write
    rows = {p: int((panel.part_bounds(p)[:, 1] - panel.part_bounds(p)[:, 0]).sum()) for p in PARTS}
    counts = {p: panel.windows(p).total for p in PARTS}
    log.info("windows: train %d, val %d, test %d", counts["train"], counts["val"], counts["test"])
    return WindowResult(
        n_series=panel.n_series,
        n_rows=int(panel.offsets[-1]),
        n_train=rows["train"],
        n_val=rows["val"],
        n_test=rows["test"],
        n_train_windows=counts["train"],
        n_val_windows=counts["val"],
        n_test_windows=counts["test"],
    )


__all__ = ["WindowResult", "run_window"]
