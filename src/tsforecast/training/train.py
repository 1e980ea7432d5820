"""Stage ``train``: fit the LSTM with early stopping, checkpoints and a progress bar.

Batches are gathered straight from a strided view of the scaled series (no
``DataLoader``, no materialised windows). After every epoch the full training state
(weights, optimiser, schedule, RNG states, history) is checkpointed under
``.checkpoints/``, so a run killed mid-training resumes from its last epoch and, on
the CPU with the same seed, ends with the same weights as an unbroken run.

``fit`` builds the parts and hands the loop (``trainloop.run_epochs``, shared with the panel
trainer ``panel_train``) two callables: shuffle + ``train_epoch`` (one ``trainstep.Step`` per
batch, plain or sharded alike), and ``validate``; ``checkpoint.py`` holds the state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsforecast.config import Config, ModelConfig, TrainConfig, WindowConfig
from tsforecast.dataset.panel import is_panel_dir
from tsforecast.dataset.window import Prepared, load_prepared, window_starts
from tsforecast.errors import TrainingError
from tsforecast.evaluation.intervals import INTERVALS_KEY
from tsforecast.forecasting.core import calibrate_model
from tsforecast.paths import Paths
from tsforecast.training.inference import WindowBatches, predict_scaled, select_device
from tsforecast.training.loop import (
    PAUSE_ENV,
    build_model,
    pause_for_tests,
    run_epochs,
    seed_everything,
    start,
    train_epoch,
)
from tsforecast.training.loop import info as loop_info
from tsforecast.training.model import LSTMForecaster
from tsforecast.training.outputs import (
    CHECKPOINT,
    TrainResult,
    check_window,
    fingerprint,
    show_progress,
    train_metrics,
    write_outputs,
)
from tsforecast.training.panel_train import run_panel_train
from tsforecast.training.step import fast_cpu_math, make_loss

log = logging.getLogger(__name__)


def _train_and_val_batches(prepared: Prepared, device: torch.device) -> tuple[WindowBatches, WindowBatches]:
    """Train windows at the configured stride, val windows at stride 1, both on ``device``."""
    L, H = prepared.input_size, prepared.horizon
    series = torch.from_numpy(np.ascontiguousarray(prepared.series, dtype=np.float32)).to(device)
    train_starts = torch.from_numpy(window_starts(prepared.bounds, "train", L, H, prepared.stride))
    val_starts = torch.from_numpy(window_starts(prepared.bounds, "val", L, H, 1))
    train_b = WindowBatches(series, train_starts.to(device), L, H)
    val_b = WindowBatches(series, val_starts.to(device), L, H)
    if len(train_b) == 0 or len(val_b) == 0:
        raise TrainingError(
            f"no {'train' if len(train_b) == 0 else 'val'} windows; check split.* and window.*"
        )
    return train_b, val_b


def _log_start(
    cfg: Config,
    model: LSTMForecaster,
    device: torch.device,
    shards: int,
    train_b: WindowBatches,
    val_b: WindowBatches,
) -> None:
    log.info(
        "training %s (%d params) on %s%s: %d train / %d val windows, %d steps/epoch",
        cfg.model.cell.upper(),
        model.n_params(),
        device,
        f", batches split over {shards} threads" if shards > 1 else "",
        len(train_b),
        len(val_b),
        math.ceil(len(train_b) / cfg.train.batch_size),
    )


def validate(model: LSTMForecaster, batches: WindowBatches, device: torch.device, epoch: int) -> float:
    """Mean squared error over every val window and horizon step (scaled axis)."""
    pv, tv = predict_scaled(model, batches, device)
    val_loss = float(np.mean((pv - tv) ** 2))
    if not math.isfinite(val_loss):
        raise TrainingError(f"validation loss is {val_loss} at epoch {epoch}; training stopped")
    return val_loss


def _in_order(
    batches: WindowBatches, order: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (x, y) batches of the windows in ``order``, ``batch_size`` at a time."""
    for b in range(math.ceil(len(order) / batch_size)):
        yield batches.batch(order[b * batch_size : (b + 1) * batch_size])


def fit(
    cfg: Config,
    prepared: Prepared,
    device: torch.device,
    checkpoint_path: Path | None = None,
    fingerprint: str = "",
    progress: bool = True,
) -> tuple[LSTMForecaster, dict[str, Any]]:
    """Train on the train windows, early-stop on val loss; return the best model and history."""
    tc = cfg.train
    seed_everything(tc.seed)
    train_b, val_b = _train_and_val_batches(prepared, device)
    n_features = train_b.windows.shape[1]  # windows: (N, C, L+H)
    model = build_model(cfg, n_features).to(device)  # draws the initial weights from the seeded RNG
    n_steps = math.ceil(len(train_b) / tc.batch_size)
    loop = start(model, tc, device, tc.epochs * n_steps, make_loss(tc.loss), checkpoint_path, fingerprint)
    _log_start(cfg, model, device, loop.shards, train_b, val_b)

    def train_one(epoch: int) -> tuple[float, int]:
        order = torch.randperm(len(train_b), generator=loop.shuffle).to(device)
        batches = _in_order(train_b, order, tc.batch_size)
        return train_epoch(batches, n_steps, loop.step, loop.updater, epoch=epoch, cfg=tc, progress=progress)

    state = run_epochs(
        loop, tc, train_one, lambda epoch: validate(model, val_b, device, epoch), checkpoint_path, fingerprint
    )
    summary = loop_info(
        state,
        model.n_params(),
        loop.resumed_from,
        tc.epochs,
        n_train_windows=len(train_b),
        n_val_windows=len(val_b),
    )
    return model.cpu(), summary


def run_train(window: WindowConfig, model: ModelConfig, train: TrainConfig, paths: Paths) -> TrainResult:
    """Train on ``data/prepared/``; write ``models/``, ``metrics/train.json`` and loss plots.

    A panel in ``data/prepared/`` (``panel.is_panel_dir``) trains one global model across its
    series (:func:`tsforecast.training.panel_train.run_panel_train`).
    """
    # fit() and build_model() read only these three sections of a Config
    cfg = Config.model_construct(window=window, model=model, train=train)
    sections = {"window": window, "model": model, "train": train}
    resolved = {name: section.model_dump(mode="json") for name, section in sections.items()}
    fast_cpu_math()
    if is_panel_dir(paths.prepared):
        return run_panel_train(cfg, resolved, paths)
    prepared = load_prepared(paths.prepared)  # edge: read
    check_window((prepared.input_size, prepared.horizon), cfg)
    device = select_device(cfg.train.device)
    ckpt = paths.checkpoints / CHECKPOINT
    fp = fingerprint(cfg, paths.prepared, ("series.npy", "meta.json", "scaler.json"))
    net, info = fit(cfg, prepared, device, ckpt, fp, progress=show_progress())  # compute

    extra = {
        "config": resolved,
        "columns": prepared.columns,
        "scaler": prepared.scaler.to_dict(),
        "freq": prepared.freq,
        "timestamp_column": prepared.timestamps.name,
        "best_epoch": info["best_epoch"],
        "best_val_loss": info["best_val_loss"],
        # prediction intervals: split-conformal quantiles of the val residuals (forecasting.py)
        INTERVALS_KEY: calibrate_model(net, prepared).to_dict(),
    }
    return write_outputs(paths, net, extra, info, train_metrics(info, device))  # edge: atomic writes


__all__ = [
    "CHECKPOINT",
    "PAUSE_ENV",
    "TrainResult",
    "build_model",
    "fit",
    "pause_for_tests",
    "run_train",
    "seed_everything",
    "train_epoch",
    "validate",
]
