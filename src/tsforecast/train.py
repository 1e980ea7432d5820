"""Stage ``train``: fit the LSTM with early stopping, checkpoints and a progress bar.

Batches are gathered straight from a strided view of the scaled series (no
``DataLoader``, no materialised windows). After every epoch the full training state
(weights, optimiser, schedule, RNG states, history) is checkpointed under
``.checkpoints/``, so a run killed mid-training resumes from its last epoch and, on
the CPU with the same seed, ends with the same weights as an unbroken run.

``fit`` builds the parts, then its loop reads top to bottom: shuffle, ``train_epoch`` (one
``trainstep.Step`` per batch, plain or sharded alike), ``validate``,
``TrainState.after_epoch``, checkpoint, early stop (``checkpoint.py`` holds the state).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tsforecast.checkpoint import Stateful, TrainState, load_checkpoint, save_checkpoint
from tsforecast.config import Config, ModelConfig, TrainConfig, WindowConfig
from tsforecast.errors import TrainingError
from tsforecast.forecasting import calibrate_model
from tsforecast.inference import WindowBatches, predict_scaled, select_device
from tsforecast.intervals import INTERVALS_KEY
from tsforecast.io import atomic_dir, write_json, write_png
from tsforecast.model import LSTMForecaster, save_model
from tsforecast.paths import Paths
from tsforecast.progress import progress_bar
from tsforecast.trainstep import Step, Updater, cpu_shards, fast_cpu_math, make_loss, make_step
from tsforecast.windowing import Prepared, load_prepared, window_starts

log = logging.getLogger(__name__)

CHECKPOINT = "train.pt"


@dataclass(frozen=True)
class TrainResult:
    epochs: int
    best_epoch: int
    best_val_loss: float
    train_seconds: float
    samples_per_second: float
    device: str
    n_params: int
    resumed_from_epoch: int


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _fingerprint(cfg: Config, prepared_dir: Path) -> str:
    """What a checkpoint must match to be resumed: the params and the prepared data."""
    h = hashlib.sha256()
    h.update(cfg.section_hash("model", "train", "window", "split").encode())
    for name in ("series.npy", "meta.json", "scaler.json"):
        p = prepared_dir / name
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def build_model(cfg: Config, n_features: int) -> LSTMForecaster:
    m = cfg.model
    return LSTMForecaster(
        n_features=n_features,
        input_size=cfg.window.input_size,
        horizon=cfg.window.horizon,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        cell=m.cell,
        window_norm=m.window_norm,
        linear_skip=m.linear_skip,
    )


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


def _stateful(model: LSTMForecaster, updater: Updater, shuffle: torch.Generator) -> dict[str, Stateful]:
    """The live objects a checkpoint saves and a resume restores (in this order)."""
    return {
        "model": (model.state_dict, model.load_state_dict),
        "optimizer": (updater.optimizer.state_dict, updater.optimizer.load_state_dict),
        "scheduler": (updater.scheduler.state_dict, updater.scheduler.load_state_dict),
        "generator": (shuffle.get_state, shuffle.set_state),
        "torch_rng": (torch.get_rng_state, torch.set_rng_state),
    }


def train_epoch(
    batches: WindowBatches,
    order: torch.Tensor,
    step: Step,
    updater: Updater,
    *,
    epoch: int,
    cfg: TrainConfig,
    progress: bool,
) -> tuple[float, int]:
    """One pass over the training windows in ``order``: (mean train loss, windows seen)."""
    updater.model.train()
    step.start_epoch(epoch)
    n_steps = math.ceil(len(order) / cfg.batch_size)
    running, seen = 0.0, 0
    bar = progress_bar(
        range(n_steps),
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=not progress,
        mininterval=0.5,
    )
    for b in bar:
        x, y = batches.batch(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
        updater.zero_grad()
        loss = step(x, y)  # sets the grads
        if not math.isfinite(loss):  # before the update: the weights stay as they were
            raise TrainingError(
                f"train loss is {loss} at epoch {epoch}, batch {b + 1}/{n_steps}; "
                f"training stopped - lower train.lr (now {cfg.lr:g}), keep train.grad_clip > 0 "
                "or check the data for extreme values"
            )
        updater.update()
        running += loss * len(x)
        seen += len(x)
        if b % 10 == 0:
            bar.set_postfix(loss=f"{running / seen:.4f}")
    bar.close()
    if order.device.type == "cuda":
        torch.cuda.synchronize()
    return running / max(seen, 1), seen


def validate(model: LSTMForecaster, batches: WindowBatches, device: torch.device, epoch: int) -> float:
    """Mean squared error over every val window and horizon step (scaled axis)."""
    pv, tv = predict_scaled(model, batches, device)
    val_loss = float(np.mean((pv - tv) ** 2))
    if not math.isfinite(val_loss):
        raise TrainingError(f"validation loss is {val_loss} at epoch {epoch}; training stopped")
    return val_loss


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


def _log_epoch(state: TrainState, epochs: int, seen: int) -> None:
    h = state.history[-1]
    log.info(
        "epoch %d/%d: train %.5f, val %.5f%s, %.1fs (%.0f windows/s)",
        h["epoch"],
        epochs,
        h["train_loss"],
        h["val_loss"],
        " *" if state.improved else "",
        h["seconds"],
        seen / max(h["seconds"], 1e-9),
    )


def _info(
    state: TrainState,
    n_params: int,
    resumed_from: int,
    train_b: WindowBatches,
    val_b: WindowBatches,
    epochs: int,
) -> dict[str, Any]:
    """What ``fit`` hands back beside the model (the stage writes it to metrics and plots)."""
    history = list(state.history)
    return {
        "history": history,
        "best_val_loss": state.best_val,
        "best_epoch": state.best_epoch,
        "epochs": len(history),
        "stopped_early": bool(history) and history[-1]["epoch"] < epochs,  # only patience ends it early
        "train_seconds": state.train_time,
        "samples": state.samples,
        "samples_per_second": state.samples / max(state.train_time, 1e-9),
        "n_params": n_params,
        "resumed_from_epoch": resumed_from,
        "n_train_windows": len(train_b),
        "n_val_windows": len(val_b),
    }


PAUSE_ENV = "TSFORECAST_TEST_PAUSE_AFTER_EPOCH"


def pause_for_tests(epoch: int, checkpoint: Path) -> None:
    """Test hook (kill tests only): with ``TSFORECAST_TEST_PAUSE_AFTER_EPOCH=<epoch>``, after
    that epoch's checkpoint is written, create ``<checkpoint>.paused`` and wait while it
    exists, so a test can SIGKILL training at a known point (or delete the file to go on)."""
    if os.environ.get(PAUSE_ENV) != str(epoch):
        return
    marker = checkpoint.with_name(checkpoint.name + ".paused")
    marker.touch()
    log.warning("test hook %s=%d: paused; delete %s to go on", PAUSE_ENV, epoch, marker)
    while marker.exists():
        time.sleep(0.05)


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
    updater = Updater.build(
        model, tc, device, total_steps=tc.epochs * math.ceil(len(train_b) / tc.batch_size)
    )
    loss_fn = make_loss(tc.loss)
    shuffle = torch.Generator().manual_seed(tc.seed)
    live = _stateful(model, updater, shuffle)
    state = TrainState()
    if checkpoint_path is not None and tc.resume:
        state = load_checkpoint(checkpoint_path, fingerprint, live) or state
        if state.epoch:
            log.info("resuming from checkpoint after epoch %d (best val %.5f)", state.epoch, state.best_val)
    resumed_from = state.epoch
    shards = cpu_shards(tc, device)
    step = make_step(model, loss_fn, updater.scaler, shards, tc.seed)
    _log_start(cfg, model, device, shards, train_b, val_b)

    try:
        for epoch in range(state.epoch + 1, tc.epochs + 1):
            if state.should_stop(tc.patience):  # also true on resuming a run that had already stopped
                break
            t0 = time.perf_counter()
            order = torch.randperm(len(train_b), generator=shuffle).to(device)
            train_loss, seen = train_epoch(
                train_b, order, step, updater, epoch=epoch, cfg=tc, progress=progress
            )
            seconds = time.perf_counter() - t0
            val_loss = validate(model, val_b, device, epoch)
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": updater.lr,
                "seconds": seconds,
            }
            state = state.after_epoch(record, seen, model)
            _log_epoch(state, tc.epochs, seen)
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, fingerprint, state, live)
                pause_for_tests(epoch, checkpoint_path)
    finally:
        step.close()

    assert state.best_weights is not None
    model.load_state_dict(state.best_weights)  # the best epoch's weights, not the last
    model.eval()
    return model.cpu(), _info(state, model.n_params(), resumed_from, train_b, val_b, tc.epochs)


def plot_loss(history: list[dict[str, float]], best_epoch: int, path: Path) -> None:
    """Train and val loss per epoch, the kept epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3, label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", ms=3, label="val MSE")
    ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"kept: epoch {best_epoch}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (train-fit standard scale, unitless; log axis)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    write_png(fig, path)


def run_train(window: WindowConfig, model: ModelConfig, train: TrainConfig, paths: Paths) -> TrainResult:
    """Train on ``data/prepared/``; write ``models/``, ``metrics/train.json`` and loss plots."""
    # fit() and build_model() read only these three sections of a Config
    cfg = Config.model_construct(window=window, model=model, train=train)
    sections = {"window": window, "model": model, "train": train}
    resolved = {name: section.model_dump(mode="json") for name, section in sections.items()}
    fast_cpu_math()
    prepared = load_prepared(paths.prepared)  # edge: read
    expected = (cfg.window.input_size, cfg.window.horizon)
    if (prepared.input_size, prepared.horizon) != expected:
        raise TrainingError(
            f"data/prepared/ was built for (input_size, horizon)={(prepared.input_size, prepared.horizon)} "
            f"but params say {expected}; run `dvc repro` (or `tsforecast window`) first"
        )
    device = select_device(cfg.train.device)
    ckpt = paths.checkpoints / CHECKPOINT
    fingerprint = _fingerprint(cfg, paths.prepared)
    progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    net, info = fit(cfg, prepared, device, ckpt, fingerprint, progress=progress)  # compute

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
    metrics = {
        "epochs": info["epochs"],
        "best_epoch": info["best_epoch"],
        "best_val_loss": info["best_val_loss"],
        "stopped_early": info["stopped_early"],
        "train_seconds": round(info["train_seconds"], 3),
        "samples_per_second": round(info["samples_per_second"], 1),
        "device": str(device),
        "n_params": info["n_params"],
        "n_train_windows": info["n_train_windows"],
        "n_val_windows": info["n_val_windows"],
        "resumed_from_epoch": info["resumed_from_epoch"],
    }
    with atomic_dir(paths.models) as tmp:  # edge: atomic writes
        save_model(net, tmp / "model.pt", extra)
        write_json(tmp / "scaler.json", prepared.scaler.to_dict())
        write_json(tmp / "config.json", resolved)
        write_json(
            tmp / "meta.json",
            {k: v for k, v in extra.items() if k not in ("config", "scaler", INTERVALS_KEY)},
        )
    write_json(paths.metrics / "train.json", metrics)
    write_json(paths.plots / "loss.json", info["history"])
    plot_loss(info["history"], info["best_epoch"], paths.plots / "loss.png")
    ckpt.unlink(missing_ok=True)  # finished: the next run starts afresh
    return TrainResult(
        epochs=info["epochs"],
        best_epoch=info["best_epoch"],
        best_val_loss=round(info["best_val_loss"], 6),
        train_seconds=metrics["train_seconds"],
        samples_per_second=metrics["samples_per_second"],
        device=str(device),
        n_params=info["n_params"],
        resumed_from_epoch=info["resumed_from_epoch"],
    )


__all__ = ["TrainResult", "build_model", "fit", "run_train", "seed_everything", "train_epoch", "validate"]
