"""Stage ``window`` for a panel: the validated long frame -> :func:`tsforecast.dataset.panel.build_panel`.

Each series is split chronologically on its own (fractions of its length, or row counts
anchored at its end: test = its last ``split.test`` rows, val the ``split.val`` before them,
train every row before val), gets a scaler fitted on its own train rows, and its windows never
leave it. ``data/prepared/`` holds what :func:`tsforecast.dataset.panel.save_panel` writes; the stages
after it tell a panel by :func:`tsforecast.dataset.panel.is_panel_dir`.
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
class PanelWindowResult:
    n_series: int
    n_rows: int
    n_train: int  # rows, summed over the series
    n_val: int
    n_test: int
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int


def window_panel(
    data: DataConfig, split: SplitConfig, window: WindowConfig, paths: Paths
) -> PanelWindowResult:
    """Build the panel of ``data/validated/`` and save it to ``data/prepared/`` (atomically)."""
    frame, meta = read_validated(paths.validated)  # edge: read
    frame = with_series_id(frame, data)  # one series is a panel of one
    if meta.get("id_column") != data.id_column:
        raise DataError(
            f"{paths.validated} was validated with id_column={meta.get('id_column')!r}, params say "
            f"data.id_column={data.id_column!r}; run `dvc repro` (or `tsforecast validate`) first"
        )
    panel = build_panel(  # pure
        frame,
        id_column=id_column(data),
        timestamp_column=data.timestamp_column,
        columns=[data.target, *data.covariates],
        split=split,
        window=window,
        freq=meta["freq"],
        anchor=split.anchor_for(frame[id_column(data)].nunique()),
    )
    panel = replace(panel, id_column=data.id_column)  # None: one series, under the implicit id
    save_panel(panel, paths.prepared)  # edge: atomic write
    rows = {p: int((panel.part_bounds(p)[:, 1] - panel.part_bounds(p)[:, 0]).sum()) for p in PARTS}
    counts = {p: panel.windows(p).total for p in PARTS}
    log.info("panel windows: train %d, val %d, test %d", counts["train"], counts["val"], counts["test"])
    return PanelWindowResult(
        n_series=panel.n_series,
        n_rows=int(panel.offsets[-1]),
        n_train=rows["train"],
        n_val=rows["val"],
        n_test=rows["test"],
        n_train_windows=counts["train"],
        n_val_windows=counts["val"],
        n_test_windows=counts["test"],
    )
