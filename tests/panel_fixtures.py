"""Tiny synthetic panels for the panel training and forecast tests (no pipeline stages run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tsforecast.config import Config, load_config
from tsforecast.dataset.panel import Panel, build_panel, save_panel
from tsforecast.io import write_json
from tsforecast.paths import Paths
from tsforecast.training import train as train_mod

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
L, H = 12, 4
ID, TS, Y = "sid", "ts", "y"


def panel_cfg(**overrides: object) -> Config:
    """params.yaml shrunk to tiny panels; ``overrides`` use dotted keys with ``__`` for ``.``."""
    values: dict[str, object] = {
        "data.id_column": ID,
        "data.timestamp_column": TS,
        "data.target": Y,
        "data.freq": "h",
        "window.input_size": L,
        "window.horizon": H,
        "window.stride": 1,
        "split.train": 0.6,
        "split.val": 0.2,
        "split.test": 0.2,
        "evaluate.seasonal_period": 6,
        "model.hidden_size": 8,
        "model.num_layers": 1,
        "model.dropout": 0.0,
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.windows_per_epoch": 64,
        "train.patience": 10,
        "train.seed": 0,
        "train.device": "cpu",
        "train.resume": False,
        "train.cpu_shards": 1,
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(PARAMS, values)


def panel_frame(
    n_series: int, length: int = 60, seed: int = 0, ids: list[object] | None = None
) -> pd.DataFrame:
    """``n_series`` daily-ish sines of different levels and amplitudes, hourly, each its own start."""
    rng = np.random.default_rng(seed)
    names = ids if ids is not None else [f"s{i}" for i in range(n_series)]
    parts = []
    for i, sid in enumerate(names):
        t = np.arange(length)
        y = 10.0 * (i + 1) + (1 + i % 3) * np.sin(2 * np.pi * t / 6) + rng.normal(0, 0.1, length)
        start = pd.Timestamp("2021-01-01") + pd.Timedelta(hours=3 * i)
        parts.append(pd.DataFrame({ID: sid, TS: pd.date_range(start, periods=length, freq="h"), Y: y}))
    return pd.concat(parts, ignore_index=True)


def make_panel(cfg: Config, frame: pd.DataFrame) -> Panel:
    return build_panel(
        frame, id_column=ID, timestamp_column=TS, columns=[Y], split=cfg.split, window=cfg.window, freq="h"
    )


def write_panel_repo(root: Path, cfg: Config, frame: pd.DataFrame) -> Paths:
    """data/validated/ (the long frame) and data/prepared/ (its panel), as the data stages write them."""
    paths = Paths(root)
    paths.validated.mkdir(parents=True)
    frame.to_parquet(paths.validated / "data.parquet", index=False)
    write_json(paths.validated / "meta.json", {"freq": "h", "id_column": ID, "n_series": frame[ID].nunique()})
    save_panel(make_panel(cfg, frame), paths.prepared)
    return paths


@pytest.fixture(name="quiet_training")
def fixture_quiet_training(monkeypatch: pytest.MonkeyPatch):
    """fp32 on the CPU, no bars, no process-wide math switches; torch's thread count put back."""
    monkeypatch.setenv("TSFORECAST_CPU_BF16", "0")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(train_mod, "fast_cpu_math", lambda: None)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
