from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tsforecast.config import Config, load_config
from tsforecast.data.datasets import M4_HOURLY_HORIZON, M4_HOURLY_SEASONALITY, load_m4_hourly
from tsforecast.dataset.panel import Panel, build_panel

ROOT = Path("/work/main")
H, M = M4_HOURLY_HORIZON, M4_HOURLY_SEASONALITY
PROTOCOL: dict[str, Any] = {
    "data.path": "builtin:m4-hourly",
    "data.id_column": "unique_id",
    "data.target": "value",
    "split.train": 400,
    "split.val": H,
    "split.test": H,
    "window.horizon": H,
    "evaluate.seasonal_period": M,
    "train.device": "cpu",
}


def trial_config(overrides: dict[str, Any], params: Path = ROOT / "params.yaml") -> Config:
    """params.yaml + the M4 protocol + ``overrides`` (dotted keys, as ``dvc exp run -S``)."""
    return load_config(params, {**PROTOCOL, **overrides})


def whole_history_train(panel: Panel) -> Panel:
    """The panel with each series' train part extended to every row before val, scalers refitted."""
    bounds = panel.bounds.copy()
    bounds[:, 0, 0] = 0
    mean, std = np.empty_like(panel.mean), np.empty_like(panel.std)
    for i in range(panel.n_series):
        rows = panel.series(i)[: bounds[i, 0, 1]].astype(np.float64)
        mean[i], std[i] = rows.mean(axis=0), rows.std(axis=0)
    return replace(panel, bounds=bounds, mean=mean, std=std)


def m4_panel(cfg: Config, n_series: int | None = None) -> Panel:
    """The embedded training series (the first ``n_series``) as a panel split by ``cfg``."""
    frame = load_m4_hourly(cfg.data.id_column or "unique_id", "timestamp", cfg.data.target)
    if n_series is not None:
        keep = frame[cfg.data.id_column].unique()[:n_series]
        frame = frame[frame[cfg.data.id_column].isin(keep)]
    panel = build_panel(
        frame,
        id_column=cfg.data.id_column or "unique_id",
        timestamp_column="timestamp",
        columns=[cfg.data.target],
        split=cfg.split,
        window=cfg.window,
        freq="h",
    )
    return whole_history_train(panel)
