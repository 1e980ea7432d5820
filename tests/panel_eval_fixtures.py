"""Tiny synthetic panels on disk, as the window and train stages leave them, for the evaluate, backtest and register tests.

Built with the real building blocks (``panel.build_panel``/``save_panel``, ``model.save_model``
with the PANEL.md extras), so no other branch's stage code is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.panel import Panel, build_panel, save_panel
from tsforecast.evaluation.intervals import INTERVALS_KEY, calibrate
from tsforecast.io import write_json
from tsforecast.paths import Paths
from tsforecast.training.model import LSTMForecaster, save_model

ID, TS, Y = "unique_id", "timestamp", "value"


def panel_frame(lengths: list[int], period: int = 6, seed: int = 0) -> pd.DataFrame:
    """A long frame of positive seasonal series ``s0, s1, ...`` (hourly, a period-``period`` sine with
    its own level, amplitude and noise), series after series."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        t = np.arange(n)
        level, amp = 50.0 + 20 * i, 5.0 + 3 * (i % 3)
        y = level + amp * np.sin(2 * np.pi * t / period + i) + rng.normal(0, 1.0 + 0.5 * i, n)
        ts = pd.date_range("2024-01-01", periods=n, freq="h") + pd.Timedelta(hours=3 * i)
        parts.append(pd.DataFrame({ID: f"s{i}", TS: ts, Y: y.round(4)}))
    return pd.concat(parts, ignore_index=True)


def make_panel(frame: pd.DataFrame, split: SplitConfig, window: WindowConfig) -> Panel:
    return build_panel(frame, id_column=ID, timestamp_column=TS, columns=[Y], split=split, window=window)


def repeat_last_model(input_size: int, horizon: int) -> LSTMForecaster:
    """A model whose forecast is exactly the input window's last value (zero head and skip, window_norm=last)."""
    torch.manual_seed(0)
    net = LSTMForecaster(1, input_size, horizon, hidden_size=4, num_layers=1, window_norm="last")
    assert net.skip is not None
    with torch.no_grad():
        for p in (net.head.weight, net.head.bias, net.skip.weight, net.skip.bias):
            p.zero_()
    return net.eval()


def noisy_model(input_size: int, horizon: int, seed: int = 0) -> LSTMForecaster:
    """An untrained model with random weights (forecasts differ from every baseline)."""
    torch.manual_seed(seed)
    return LSTMForecaster(1, input_size, horizon, hidden_size=8, num_layers=1).eval()


def panel_extra(panel: Panel, calibration_seed: int | None = 0) -> dict[str, Any]:
    """The model file's extras for a panel, as PANEL.md specifies them (per-series scalers etc.)."""
    extra: dict[str, Any] = {
        "columns": list(panel.columns),
        "freq": panel.freq,
        "timestamp_column": TS,
        "id_column": ID,
        "scaler": {
            "mean": np.median(panel.mean, axis=0).tolist(),
            "std": np.median(panel.std, axis=0).tolist(),
        },
        "series_scalers": {
            "ids": [str(i) for i in panel.ids],
            "mean": panel.mean.tolist(),
            "std": panel.std.tolist(),
        },
    }
    if calibration_seed is not None:
        rng = np.random.default_rng(calibration_seed)
        extra[INTERVALS_KEY] = calibrate(rng.normal(0, 0.5, (200, panel.horizon))).to_dict()
    return extra


def write_panel_repo(
    root: Path,
    frame: pd.DataFrame,
    split: dict[str, Any],
    window: dict[str, Any],
    model: LSTMForecaster | None = None,
    **sections: dict[str, Any],
) -> Paths:
    """params.yaml, data/validated/ (the long frame), data/prepared/ (the panel) and models/model.pt."""
    params = {
        "data": {"path": "data/external/panel.csv", "timestamp_column": TS, "target": Y, "id_column": ID},
        "split": split,
        "window": window,
        **sections,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = Paths.from_root(root)
    paths.validated.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.validated / "data.parquet", index=False)
    panel = make_panel(frame, SplitConfig(**split), WindowConfig(**window))
    write_json(
        paths.validated / "meta.json", {"freq": panel.freq, "id_column": ID, "n_series": panel.n_series}
    )
    save_panel(panel, paths.prepared)
    net = model or repeat_last_model(panel.input_size, panel.horizon)
    save_model(net, paths.models / "model.pt", panel_extra(panel))
    return paths
