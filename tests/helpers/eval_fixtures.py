"""Small series on disk, as the window and train stages leave them, for the evaluate, backtest and
register tests; one series and panels alike (one series is a panel of one).

Built with the real building blocks: the window stage writes ``data/prepared/``, and
``models/model.pt`` holds a model with its :class:`~tsforecast.training.card.ModelCard`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from pandas.tseries.frequencies import to_offset

from tsforecast import stages
from tsforecast.config import DataConfig, SplitConfig, WindowConfig, load_config
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.dataset.panel import Panel, build_panel, load_panel
from tsforecast.evaluation.intervals import calibrate
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths
from tsforecast.training.card import ModelCard, SeriesScalers
from tsforecast.training.model import LSTMForecaster, save_model

ID, TS, Y = "unique_id", "timestamp", "value"

# pattern_frame: s_t = PATTERN[t % 4] + SLOPE * t (multiples of 0.25: exact in float32); one season
# (PERIOD) back the series is exactly 1.0 lower, so series i = LEVEL_i + AMP_i * s_t is AMP_i lower
PATTERN = np.array([0.0, 1.0, -1.0, 0.5])
PERIOD, SLOPE = 4, 0.25


def level(i: int) -> float:
    return 10.0 + 5.0 * i


def amp(i: int) -> float:
    return 2.0 + i


def pattern(n: int, slope: float = SLOPE) -> np.ndarray:
    """s_t for t < n (float64)."""
    t = np.arange(n)
    return PATTERN[t % PERIOD] + slope * t


def pattern_frame(n_series: int, n_rows: int = 60, slope: float = SLOPE, freq: str = "30min") -> pd.DataFrame:
    """``n_series`` series ``LEVEL_i + AMP_i * s_t`` of ``n_rows + 4 i`` rows; one series has no id column."""
    parts = []
    for i in range(n_series):
        n = n_rows + PERIOD * i
        ts = pd.date_range("2024-01-01", periods=n, freq=freq) + i * pd.Timedelta(freq)
        parts.append(pd.DataFrame({ID: f"s{i}", TS: ts, Y: level(i) + amp(i) * pattern(n, slope)}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.drop(columns=ID) if n_series == 1 else frame


def panel_frame(lengths: list[int], period: int = 6, seed: int = 0) -> pd.DataFrame:
    """A long frame of positive seasonal series ``s0, s1, ...`` (hourly, a period-``period`` sine with
    its own level, amplitude and noise), series after series."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        t = np.arange(n)
        lvl, a = 50.0 + 20 * i, 5.0 + 3 * (i % 3)
        y = lvl + a * np.sin(2 * np.pi * t / period + i) + rng.normal(0, 1.0 + 0.5 * i, n)
        ts = pd.date_range("2024-01-01", periods=n, freq="h") + pd.Timedelta(hours=3 * i)
        parts.append(pd.DataFrame({ID: f"s{i}", TS: ts, Y: y.round(4)}))
    return pd.concat(parts, ignore_index=True)


def id_of(frame: pd.DataFrame) -> str | None:
    """The frame's id column (None: one series, no id column)."""
    return ID if ID in frame.columns else None


def make_panel(frame: pd.DataFrame, split: dict[str, Any], window: dict[str, Any]) -> Panel:
    """The panel the window stage builds of ``frame``, in memory (one series: under the implicit id)."""
    data = DataConfig(timestamp_column=TS, target=Y, id_column=id_of(frame))
    long = with_series_id(frame, data)
    sc = SplitConfig(**split)
    panel = build_panel(
        long,
        id_column=id_column(data),
        timestamp_column=TS,
        columns=[Y],
        split=sc,
        window=WindowConfig(**window),
        anchor=sc.anchor_for(long[id_column(data)].nunique()),
    )
    return replace(panel, id_column=data.id_column)


# ---------------------------------------------------------------------------- models with known forecasts


def _zeroed(input_size: int, horizon: int) -> LSTMForecaster:
    torch.manual_seed(0)
    net = LSTMForecaster(1, input_size, horizon, hidden_size=4, num_layers=1, window_norm="last")
    assert net.skip is not None
    with torch.no_grad():
        for p in (net.head.weight, net.head.bias, net.skip.weight, net.skip.bias):
            p.zero_()
    return net


def repeat_last_model(input_size: int, horizon: int) -> LSTMForecaster:
    """Forecasts exactly the input window's last value (zero head and skip, window_norm=last)."""
    return _zeroed(input_size, horizon).eval()


def seasonal_naive_model(
    input_size: int, horizon: int, period: int = PERIOD, trend: bool = False
) -> LSTMForecaster:
    """Step h repeats the value one season back (h <= period); with ``trend`` it adds the last
    season's change, ``x[o + h - m] + x[o] - x[o - m]``: exact on :func:`pattern_frame`'s series."""
    net = _zeroed(input_size, horizon)
    assert net.skip is not None and horizon <= period
    with torch.no_grad():
        for h in range(horizon):  # the skip reads x - x[o]: weights on x[o] itself do nothing
            net.skip.weight[h, input_size + h - period] = 1.0
            if trend:
                net.skip.weight[h, input_size - 1 - period] -= 1.0
    return net.eval()


def noisy_model(input_size: int, horizon: int, seed: int = 0) -> LSTMForecaster:
    """An untrained model with random weights (forecasts differ from every baseline)."""
    torch.manual_seed(seed)
    return LSTMForecaster(1, input_size, horizon, hidden_size=8, num_layers=1).eval()


# ---------------------------------------------------------------------------- the model card, the repo


def card_extra(panel: Panel, calibration_seed: int | None = 0) -> dict[str, Any]:
    """The model file's metadata for ``panel``: its model card (intervals from noise, or none)."""
    intervals: dict[str, Any] = {}
    if calibration_seed is not None:
        rng = np.random.default_rng(calibration_seed)
        intervals = calibrate(rng.normal(0, 0.5, (200, panel.horizon))).to_dict()
    card = ModelCard(
        input_size=panel.input_size,
        horizon=panel.horizon,
        columns=tuple(panel.columns),
        timestamp_column=panel.timestamp_column,
        id_column=panel.id_column,
        freq=panel.freq,
        series_scalers=SeriesScalers(
            ids=panel.ids.tolist(), mean=panel.mean.tolist(), std=panel.std.tolist()
        ),
        intervals=intervals,
    )
    return card.to_extra()


def write_repo(
    root: Path,
    frame: pd.DataFrame,
    split: dict[str, Any],
    window: dict[str, Any],
    model: LSTMForecaster | None = None,
    calibration_seed: int | None = 0,
    **sections: dict[str, Any],
) -> Paths:
    """params.yaml, data/validated/ (the frame), data/prepared/ (the window stage's) and models/model.pt
    (``model``, default :func:`repeat_last_model`, with its card); ``sections``: more params."""
    id_column = id_of(frame)
    params = {
        "data": {
            "path": "data/external/data.csv",
            "timestamp_column": TS,
            "target": Y,
            "id_column": id_column,
        },
        "split": split,
        "window": window,
        **sections,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    paths = Paths.from_root(root)
    paths.validated.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.validated / VALIDATED_FILE, index=False)
    first = frame if id_column is None else frame[frame[ID] == frame[ID].iloc[0]]
    stamps = pd.DatetimeIndex(first[TS])
    freq = to_offset(stamps[1] - stamps[0]).freqstr  # the fixtures' series are regular
    n_series = 1 if id_column is None else frame[ID].nunique()
    write_json(paths.validated / VALIDATED_META, {"freq": freq, "id_column": id_column, "n_series": n_series})
    stages.run_stage("window", load_config(paths.params), paths)
    panel = load_panel(paths.prepared)
    net = model or repeat_last_model(panel.input_size, panel.horizon)
    save_model(net, paths.models / "model.pt", card_extra(panel, calibration_seed))
    return paths


def run_stage(name: str, root: Path) -> Any:
    """Run stage ``name`` in-process on the repo at ``root``, as its CLI subcommand does."""
    return stages.run_stage(name, load_config(root / "params.yaml"), Paths.from_root(root))


__all__ = [
    "ID",
    "PERIOD",
    "SLOPE",
    "TS",
    "Y",
    "amp",
    "card_extra",
    "id_of",
    "level",
    "make_panel",
    "noisy_model",
    "panel_frame",
    "pattern",
    "pattern_frame",
    "repeat_last_model",
    "run_stage",
    "seasonal_naive_model",
    "write_repo",
]
