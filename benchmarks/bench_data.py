"""The data and config that both training-speed loops share: Taylor's demand as a panel of one.

Both loops (ours and the plain one in ``plain_loop.py``, each run by ``workers.py``) call
:func:`speed_setup`, so they see the same series, scaled on the same train rows, the same
train/val windows (the panel's ``window_index("train")`` and ``train.val_index``, the ones
``fit`` trains and validates on) and the same model constructor arguments. The speed pairs
run at two window shapes (:data:`SPEED_SHAPES`): L=H=96, and L=336/H=48 as params.yaml ships.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tsforecast.config import Config, load_config
from tsforecast.data.ingest import load_taylor_frame
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.dataset.panel import Panel, build_panel
from tsforecast.training.train import val_index

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"

# The speed comparison: batch 64, a 2-layer LSTM of width 64, at two window shapes. "epochs" is
# the default per run (the first one is untimed warm-up). The first shape is the one the
# results.json contract keys report (CONTRACT_SHAPE).
_NET = {"batch_size": 64, "hidden_size": 64, "num_layers": 2}
SPEED_SHAPES: dict[str, dict[str, int]] = {
    "L96_H96": {"L": 96, "H": 96, "epochs": 6, **_NET},
    "L336_H48": {"L": 336, "H": 48, "epochs": 4, **_NET},  # params.yaml's window
}
# --quick: tiny sizes under the same names, so the results keep their shape
QUICK_SPEED_SHAPES: dict[str, dict[str, int]] = {
    "L96_H96": {"L": 48, "H": 24, "epochs": 2, "rows": 1200, **_NET},
    "L336_H48": {"L": 96, "H": 24, "epochs": 2, "rows": 1200, **_NET},
}
CONTRACT_SHAPE = "L96_H96"


@dataclass(frozen=True)
class SpeedSetup:
    cfg: Config  # the resolved config "ours" trains with; the plain loop reads its model section
    panel: Panel  # the series as a panel of one: raw values, split bounds, train-row scaler
    train_index: np.ndarray  # (N_train, 2) (series_idx, start): every train window, once per epoch
    val_index: np.ndarray  # (N_val, 2): the val windows fit() validates on


# The plain loop's recipe expressed as our params: Adam(lr=1e-3), no decay, no schedule, no
# clipping. "ours" with these isolates the loop's speed and accuracy from the recipe's.
PLAIN_RECIPE = {
    "train.lr": 1e-3,
    "train.weight_decay": 0.0,
    "train.lr_schedule": "constant",
    "train.grad_clip": 0.0,
    "train.loss": "mse",
}


def speed_shape(shape: str, quick: bool) -> dict[str, int]:
    """The sizes of one speed shape; names the known shapes when ``shape`` is not one."""
    shapes = QUICK_SPEED_SHAPES if quick else SPEED_SHAPES
    if shape not in shapes:
        raise ValueError(f"speed shape {shape!r} is unknown; shapes are {sorted(shapes)}")
    return shapes[shape]


def speed_config(
    epochs: int,
    quick: bool,
    recipe: str = "params",
    seed: int | None = None,
    extra: dict[str, object] | None = None,
    shape: str = CONTRACT_SHAPE,
) -> Config:
    """params.yaml with the window and model pinned to the speed benchmark's sizes.

    ``recipe="plain"`` also swaps the optimisation settings for :data:`PLAIN_RECIPE`;
    ``seed`` replaces ``train.seed`` (each speed pair runs with its own seed); ``extra``
    adds dotted-key overrides (the ablation's ``train.cpu_shards: 1``).
    """
    s = speed_shape(shape, quick)
    return load_config(
        PARAMS,
        {
            **(PLAIN_RECIPE if recipe == "plain" else {}),
            **({} if seed is None else {"train.seed": seed}),
            "window.input_size": s["L"],
            "window.horizon": s["H"],
            "window.stride": 1,
            "evaluate.seasonal_period": min(s["L"], 48),
            "model.cell": "lstm",
            "model.hidden_size": s["hidden_size"],
            "model.num_layers": s["num_layers"],
            "train.batch_size": s["batch_size"],
            "train.windows_per_epoch": "auto",  # one series: every train window once, as the plain loop
            "train.epochs": epochs,
            "train.patience": epochs + 1,  # never stop early: both loops run the same steps
            "train.device": "cpu",
            "train.resume": False,
            **(extra or {}),
        },
    )


def one_series_panel(frame: pd.DataFrame, cfg: Config, freq: str) -> Panel:
    """A one-series frame (timestamp, target) as the window stage builds it: the implicit id
    column, row counts anchored as ``split.anchor`` says for one series, ``id_column`` None."""
    long = with_series_id(frame, cfg.data)  # one series is a panel of one
    panel = build_panel(
        long,
        id_column=id_column(cfg.data),
        timestamp_column=cfg.data.timestamp_column,
        columns=[cfg.data.target, *cfg.data.covariates],
        split=cfg.split,
        window=cfg.window,
        freq=freq,
        anchor=cfg.split.anchor_for(1),
    )
    return replace(panel, id_column=cfg.data.id_column)


def speed_setup(
    epochs: int,
    quick: bool = False,
    recipe: str = "params",
    seed: int | None = None,
    extra: dict[str, object] | None = None,
    shape: str = CONTRACT_SHAPE,
) -> SpeedSetup:
    """Taylor's series as a panel of one, split as params.yaml says, scaled on its train rows."""
    cfg = speed_config(epochs, quick, recipe, seed, extra, shape)
    frame = load_taylor_frame()
    if quick:
        frame = frame.iloc[: speed_shape(shape, quick)["rows"]]
    panel = one_series_panel(frame, cfg, "30min")
    val_idx, _ = val_index(panel, cfg.train.seed)
    return SpeedSetup(cfg=cfg, panel=panel, train_index=panel.window_index("train"), val_index=val_idx)


# Public hourly benchmark data (ETT-style) cannot be downloaded at run time. This is a
# synthetic series of the same shape: hourly, 17,420 rows, one target, a split of
# 8,640 / 2,880 / 2,880 rows, and a naive forecast that is hard to beat (slow seasonal
# level, shifts, a daily cycle, persistent AR noise; repeat-last MSE about 0.09 at H=96).
HOURLY_PROXY_PARAMS: dict[str, object] = {
    "data.timestamp_column": "date",
    "data.target": "OT",
    "data.covariates": [],
    "data.freq": "auto",
    "split.train": 8640,
    "split.val": 2880,
    "split.test": 2880,
    "window.input_size": 96,
    "window.horizon": 96,
    "evaluate.seasonal_period": 24,
}
QUICK_HOURLY_PROXY_PARAMS: dict[str, object] = {
    **HOURLY_PROXY_PARAMS,
    "split.train": 1200,
    "split.val": 400,
    "split.test": 400,
    "window.input_size": 48,
    "window.horizon": 24,
    "train.epochs": 1,
}


def hourly_proxy_frame(rows: int = 17_420, seed: int = 7) -> pd.DataFrame:
    """Columns ``date`` (hourly strings) and ``OT``: the stand-in series described above."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    slow = 8 * np.sin(2 * np.pi * t / 8760 + 1.0) + 3 * np.sin(2 * np.pi * t / 2000)  # yearly, ~12 weeks
    shifts = np.cumsum(rng.normal(0, 1.2, rows // 500 + 1)).repeat(500)[:rows]  # a new level every ~3 weeks
    daily = (1.0 + 0.5 * np.sin(2 * np.pi * t / 5000)) * 1.2 * np.sin(2 * np.pi * t / 24)
    noise = rng.normal(0, 0.35, rows)
    ar = np.zeros(rows)
    for i in range(1, rows):  # AR(1), phi 0.97: persistent wandering
        ar[i] = 0.97 * ar[i - 1] + noise[i]
    dates = pd.date_range("2016-07-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    return pd.DataFrame({"date": dates, "OT": np.round(20 + slow + shifts + daily + ar, 3)})
