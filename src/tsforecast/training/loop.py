"""The training loop of :func:`tsforecast.training.train.fit` (and its refit).

``start`` builds what a run keeps between epochs (updater, step, shuffle generator, the
checkpointed state, resumed from ``checkpoint_path`` when its fingerprint matches);
``run_epochs`` is the loop: early stop, one training pass (``train_epoch`` over whatever
batches the caller gathers), validation, ``TrainState.after_epoch``, checkpoint, the test
pause. The callers differ only in where batches and the val loss come from.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tsforecast.config import Config, TrainConfig
from tsforecast.errors import TrainingError
from tsforecast.progress import progress_bar
from tsforecast.training.checkpoint import Stateful, TrainState, load_checkpoint, save_checkpoint
from tsforecast.training.model import LSTMForecaster
from tsforecast.training.step import Step, Updater, cpu_shards, make_step

log = logging.getLogger(__name__)

PAUSE_ENV = "TSFORECAST_TEST_PAUSE_AFTER_EPOCH"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: Member k of an ensemble reads the last ``input_size * MEMBER_LOOKBACK[k % 3]`` steps.
MEMBER_LOOKBACK = (1.0, 0.5, 0.75)


def member_inputs(input_size: int, members: int, least: int = 1) -> tuple[int, ...]:
    """The input size of each of ``members`` members (at least ``least``); () for a single model."""
    if members <= 1:
        return ()
    return tuple(
        max(least, round(input_size * MEMBER_LOOKBACK[k % len(MEMBER_LOOKBACK)])) for k in range(members)
    )


def build_model(cfg: Config, n_features: int, n_series: int = 1) -> LSTMForecaster:
    """The forecaster of ``cfg.model`` for ``cfg.window`` and ``n_features`` input columns
    (``auto`` keys settled for ``n_series`` series)."""
    m = cfg.model.resolved(n_series)
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
        member_inputs=member_inputs(cfg.window.input_size, m.ensemble, least=min(cfg.window.input_size, 2)),
    )


def _stateful(model: LSTMForecaster, updater: Updater, shuffle: torch.Generator) -> dict[str, Stateful]:
    """The live objects a checkpoint saves and a resume restores (in this order)."""
    return {
        "model": (model.state_dict, model.load_state_dict),
        "optimizer": (updater.optimizer.state_dict, updater.optimizer.load_state_dict),
        "scheduler": (updater.scheduler.state_dict, updater.scheduler.load_state_dict),
        "generator": (shuffle.get_state, shuffle.set_state),
        "torch_rng": (torch.get_rng_state, torch.set_rng_state),
    }


@dataclass
class Loop:
    """What a run keeps between epochs; ``state`` is the (possibly resumed) starting point."""

    model: LSTMForecaster
    updater: Updater
    step: Step
    shuffle: torch.Generator
    live: dict[str, Stateful]
    state: TrainState
    shards: int

    @property
    def resumed_from(self) -> int:
        return self.state.epoch


def start(
    model: LSTMForecaster,
    tc: TrainConfig,
    device: torch.device,
    total_steps: int,
    loss_fn: nn.Module,
    checkpoint_path: Path | None,
    fingerprint: str,
) -> Loop:
    """Updater, shuffle generator, step and the state to start from (a matching checkpoint's)."""
    updater = Updater.build(model, tc, device, total_steps=total_steps)
    shuffle = torch.Generator().manual_seed(tc.seed)
    live = _stateful(model, updater, shuffle)
    state = TrainState()
    if checkpoint_path is not None and tc.resume:
        state = load_checkpoint(checkpoint_path, fingerprint, live) or state
        if state.epoch:
            log.info("resuming from checkpoint after epoch %d (best val %.5f)", state.epoch, state.best_val)
    shards = cpu_shards(tc, device)
    step = make_step(model, loss_fn, updater.scaler, shards, tc.seed)
    return Loop(model, updater, step, shuffle, live, state, shards)


def train_epoch(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    n_steps: int,
    step: Step,
    updater: Updater,
    *,
    epoch: int,
    cfg: TrainConfig,
    progress: bool,
) -> tuple[float, int]:
    """One pass over ``n_steps`` (x, y) ``batches``: (mean train loss, windows seen)."""
    updater.model.train()
    step.start_epoch(epoch)
    running, seen = 0.0, 0
    on_cuda = False
    bar = progress_bar(
        batches,
        total=n_steps,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        disable=not progress,
        mininterval=0.5,
    )
    for b, (x, y) in enumerate(bar):
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
        on_cuda = x.device.type == "cuda"
        if b % 10 == 0:
            bar.set_postfix(loss=f"{running / seen:.4f}")
    bar.close()
    if on_cuda:
        torch.cuda.synchronize()
    return running / max(seen, 1), seen


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


def run_epochs(
    loop: Loop,
    tc: TrainConfig,
    train_one: Callable[[int], tuple[float, int]],
    validate_one: Callable[[int], float],
    checkpoint_path: Path | None,
    fingerprint: str,
) -> TrainState:
    """Epochs after ``loop.state`` until ``tc.epochs`` or early stop; leaves the best weights
    loaded and the model in eval mode. ``train_one(epoch)`` -> (train loss, windows seen);
    ``validate_one(epoch)`` -> val loss."""
    state = loop.state
    try:
        for epoch in range(state.epoch + 1, tc.epochs + 1):
            if state.should_stop(tc.patience):  # also true on resuming a run that had already stopped
                break
            t0 = time.perf_counter()
            train_loss, seen = train_one(epoch)
            seconds = time.perf_counter() - t0
            val_loss = validate_one(epoch)
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": loop.updater.lr,
                "seconds": seconds,
            }
            state = state.after_epoch(record, seen, loop.model)
            _log_epoch(state, tc.epochs, seen)
            if checkpoint_path is not None:
                save_checkpoint(checkpoint_path, fingerprint, state, loop.live)
                pause_for_tests(epoch, checkpoint_path)
    finally:
        loop.step.close()
    assert state.best_weights is not None
    loop.model.load_state_dict(state.best_weights)  # the best epoch's weights, not the last
    loop.model.eval()
    return state


def info(state: TrainState, n_params: int, resumed_from: int, epochs: int, **extra: Any) -> dict[str, Any]:
    """What a trainer hands back beside the model (the stage writes it to metrics and plots)."""
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
        **extra,
    }


__all__ = [
    "PAUSE_ENV",
    "Loop",
    "build_model",
    "info",
    "pause_for_tests",
    "run_epochs",
    "seed_everything",
    "start",
    "train_epoch",
]
