"""Stage ``train``: one LSTM fitted on the windows of every series (one series is a panel of one).

**An epoch.** With ``train.windows_per_epoch: auto`` an epoch is every train window once, in a
seeded shuffled order, when the panel has at most 16,384 of them (one series, a small panel);
past that it is 16,384 windows drawn with replacement by
:class:`~tsforecast.dataset.sampling.WindowSampler` (``train.sample_by``: ``series``, a series
uniformly then a window inside it, so each series weighs the same as M4's measures do; or
``windows``), so an epoch costs the same for 100 or 100,000 series. Draws depend only on
(seed, epoch), so a resumed run sees the windows an unbroken one would.

**Scaling.** :meth:`Panel.gather` standardises each window with its own series' train-row
mean and std, so one network sees every series on one scale; the model card stores these
per-series scalers to forecast known series on its own.

**Validation.** Every val window when there are at most ``VAL_CAP`` (16,384) of them, else a
fixed seeded sample of ``VAL_CAP`` (the same every epoch); ``metrics/train.json`` says which
(``n_val_windows``, ``val_windows_total``, ``val_sampled``). The prediction intervals are
calibrated from the per-series-scaled residuals of those val windows (split conformal).

**Checkpoints.** After every epoch the full training state (weights, optimiser, schedule, RNG
states, history) is checkpointed under ``.checkpoints/``, so a run killed mid-training resumes
from its last epoch and, on the CPU with the same seed, ends with the same weights as an
unbroken run (:mod:`tsforecast.training.loop`, :mod:`tsforecast.training.checkpoint`).

**No series-level inputs.** No id embedding: a series that appears at serving time has no
learned embedding, the model would be tied to the training panel's ids, and per-series
scaling plus the model's per-window normalisation already remove the level and scale that
mostly tell series apart (N-BEATS, a global deep model evaluated on M4, takes no id input either).

:func:`fit` is the entry point without files (benchmarks and tuning call it); :func:`run_train`
is the stage.
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
from tsforecast.dataset.panel import ARRAYS_FILE, IDS_FILE, META_FILE, VALUES_FILE, Panel, load_panel
from tsforecast.dataset.sampling import WindowSampler
from tsforecast.errors import TrainingError
from tsforecast.evaluation.intervals import calibrate
from tsforecast.paths import Paths
from tsforecast.training.card import ModelCard, SeriesScalers
from tsforecast.training.inference import amp_context, select_device
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
from tsforecast.training.step import fast_cpu_math, make_loss

log = logging.getLogger(__name__)

AUTO_WINDOWS_PER_EPOCH = 16384  # train.windows_per_epoch: auto
VAL_CAP = 16384  # at most this many val windows per validation (a fixed seeded sample beyond)


def windows_per_epoch(tc: TrainConfig, total: int) -> int | None:
    """Windows drawn per epoch, or None for every train window once (shuffled).

    ``auto``: every window when the panel has at most :data:`AUTO_WINDOWS_PER_EPOCH` train
    windows (one series, a small panel), else that many drawn (a large panel's epoch costs the
    same for 100 or 100,000 series). A number: that many drawn, whatever the panel's size.
    """
    if tc.windows_per_epoch == "auto":
        return None if total <= AUTO_WINDOWS_PER_EPOCH else AUTO_WINDOWS_PER_EPOCH
    return int(tc.windows_per_epoch)


def val_index(panel: Panel, seed: int, cap: int = VAL_CAP) -> tuple[np.ndarray, int]:
    """The val windows validated on, (K, 2) ``(series_idx, start)``, and the panel's total.

    All of them when there are at most ``cap``, else ``cap`` drawn without replacement with
    ``seed`` (kept in series-major order).
    """
    index = panel.window_index("val")
    total = len(index)
    if total > cap:
        pick = np.random.default_rng(np.random.SeedSequence([int(seed), 1])).choice(total, cap, replace=False)
        index = index[np.sort(pick)]
    return index, total


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(np.ascontiguousarray(x)).to(device),  # (B, L, C)
        torch.from_numpy(np.ascontiguousarray(y)).to(device),  # (B, H)
    )


def _sampled_batches(
    panel: Panel, sampler: WindowSampler, epoch: int, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's sampled windows as scaled (x, y) batches on ``device``."""
    for s, st in sampler.batches(epoch, batch_size):
        yield _tensors(*panel.gather(s, st), device)


def _shuffled_batches(
    panel: Panel, index: np.ndarray, shuffle: torch.Generator, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every window of ``index`` (K, 2) once, in an order drawn from ``shuffle``, as (x, y) batches."""
    order = torch.randperm(len(index), generator=shuffle).numpy()
    for b in range(0, len(order), batch_size):
        part = index[order[b : b + batch_size]]
        yield _tensors(*panel.gather(part[:, 0], part[:, 1]), device)


@torch.no_grad()
def residuals(
    model: LSTMForecaster, panel: Panel, index: np.ndarray, device: torch.device, batch_size: int = 1024
) -> np.ndarray:
    """(K, H) residuals ``y - p`` of the windows ``index`` (K, 2), each on its series' scale."""
    model.eval()
    out = []
    for i in range(0, len(index), batch_size):
        part = index[i : i + batch_size]
        x, y = panel.gather(part[:, 0], part[:, 1])
        xt, _ = _tensors(x, y, device)
        with amp_context(device):
            p = model(xt)
        out.append(y.astype(np.float64) - p.float().cpu().numpy().astype(np.float64))
    return np.concatenate(out) if out else np.empty((0, panel.horizon))


def resolved_for(cfg: Config, n_series: int) -> Config:
    """``cfg`` with the model's and training's ``auto`` keys settled for ``n_series`` series."""
    return Config.model_construct(
        window=cfg.window, model=cfg.model.resolved(n_series), train=cfg.train.resolved(n_series)
    )


def fit(
    cfg: Config,
    panel: Panel,
    device: torch.device,
    checkpoint_path: Path | None = None,
    fingerprint: str = "",
    progress: bool = True,
    validation: bool = True,
) -> tuple[LSTMForecaster, dict[str, Any]]:
    """Train one model on the train windows of every series, early-stop on val loss.

    Returns the best epoch's model (on the CPU, eval mode) and ``info``: history, best
    epoch/val loss, timing, ``n_params``, window counts, ``n_series``, ``windows_per_epoch``,
    ``sample_by``, ``val_windows_total`` and ``val_sampled``. Reads only ``cfg.window``,
    ``cfg.model`` and ``cfg.train``; needs no files (``checkpoint_path=None``: no checkpoints).
    ``validation=False`` (a refit): no val windows, every epoch runs and the last one is kept.
    """
    cfg = resolved_for(cfg, panel.n_series)
    tc = cfg.train
    check_window((panel.input_size, panel.horizon), cfg)
    seed_everything(tc.seed)
    train_ranges = panel.windows("train")
    if train_ranges.total == 0:
        raise TrainingError("no train windows in any series; check split.* and window.*")
    wpe = windows_per_epoch(tc, train_ranges.total)
    sampler = WindowSampler(train_ranges, wpe or train_ranges.total, seed=tc.seed, weighting=tc.sample_by)
    train_index = train_ranges.index() if wpe is None else None
    val_idx, val_total = val_index(panel, tc.seed) if validation else (np.empty((0, 2), np.int64), 0)
    if len(val_idx) == 0 and validation:
        raise TrainingError("no val windows in any series; check split.* and window.*")
    model = build_model(cfg, len(panel.columns)).to(device)  # draws the initial weights from the seeded RNG
    n_steps = sampler.n_batches(tc.batch_size)
    loop = start(model, tc, device, tc.epochs * n_steps, make_loss(tc.loss), checkpoint_path, fingerprint)
    log.info(
        "training %s (%d params) on %s over %d series: %s, %d steps/epoch; validating on %s",
        cfg.model.cell.upper(),
        model.n_params(),
        device,
        panel.n_series,
        f"every one of {train_ranges.total} train windows each epoch"
        if wpe is None
        else f"{wpe} windows/epoch drawn by {tc.sample_by} of {train_ranges.total}",
        n_steps,
        "nothing (a refit: the last epoch is kept)"
        if not validation
        else f"all {val_total} val windows"
        if val_total == len(val_idx)
        else f"a seeded {len(val_idx)} of {val_total}",
    )

    def train_one(epoch: int) -> tuple[float, int]:
        if train_index is not None:
            batches = _shuffled_batches(panel, train_index, loop.shuffle, tc.batch_size, device)
        else:
            batches = _sampled_batches(panel, sampler, epoch, tc.batch_size, device)
        return train_epoch(batches, n_steps, loop.step, loop.updater, epoch=epoch, cfg=tc, progress=progress)

    def validate_one(epoch: int) -> float:
        if not validation:
            return -float(epoch)  # each epoch "improves": the last one is kept
        val_loss = float(np.mean(residuals(model, panel, val_idx, device) ** 2))
        if not math.isfinite(val_loss):
            raise TrainingError(f"validation loss is {val_loss} at epoch {epoch}; training stopped")
        return val_loss

    state = run_epochs(loop, tc, train_one, validate_one, checkpoint_path, fingerprint)
    summary = loop_info(
        state,
        model.n_params(),
        loop.resumed_from,
        tc.epochs,
        n_train_windows=sampler.ranges.total,
        n_val_windows=len(val_idx),
        val_windows_total=val_total,
        val_sampled=len(val_idx) < val_total,
        n_series=panel.n_series,
        windows_per_epoch=wpe or train_ranges.total,
        sample_by="every window" if wpe is None else tc.sample_by,
    )
    return model.cpu(), summary


def refit(
    cfg: Config, panel: Panel, epochs: int, device: torch.device, through: str = "test", progress: bool = True
) -> tuple[LSTMForecaster, dict[str, Any]]:
    """The model trained again from scratch, same seed, on every row up to the end of ``through``
    (val and test rows included) for the ``epochs`` early stopping chose; no validation."""
    tc = cfg.train.model_copy(update={"epochs": max(int(epochs), 1), "resume": False})
    again = Config.model_construct(window=cfg.window, model=cfg.model, train=tc)
    return fit(again, panel.train_through(through), device, progress=progress, validation=False)


def model_card(
    net: LSTMForecaster, panel: Panel, cfg: Config, resolved: dict[str, Any], info: dict[str, Any]
) -> ModelCard:
    """The model card: the panel's facts, its per-series scalers, intervals from the val residuals."""
    val_idx, _ = val_index(panel, cfg.train.seed)
    res = residuals(net, panel, val_idx, torch.device("cpu"))  # (K, H), per-series scaled
    return ModelCard(
        input_size=panel.input_size,
        horizon=panel.horizon,
        columns=tuple(panel.columns),
        timestamp_column=panel.timestamp_column,
        id_column=panel.id_column,
        freq=panel.freq,
        series_scalers=SeriesScalers(
            ids=panel.ids.tolist(), mean=panel.mean.tolist(), std=panel.std.tolist()
        ),
        intervals=calibrate(res).to_dict(),
        config=resolved,
        best_epoch=int(info["best_epoch"]),
        best_val_loss=float(info["best_val_loss"]),
    )


def run_train(window: WindowConfig, model: ModelConfig, train: TrainConfig, paths: Paths) -> TrainResult:
    """Train on ``data/prepared/``; write ``models/`` (weights + model card), ``metrics/train.json``
    and the loss plots."""
    # fit() and build_model() read only these three sections of a Config
    cfg = Config.model_construct(window=window, model=model, train=train)
    fast_cpu_math()
    panel = load_panel(paths.prepared)  # edge: read (values memory-mapped)
    settled = resolved_for(cfg, panel.n_series)  # auto keys, as fit settles them
    sections = {"window": settled.window, "model": settled.model, "train": settled.train}
    resolved = {name: section.model_dump(mode="json") for name, section in sections.items()}
    check_window((panel.input_size, panel.horizon), cfg)
    device = select_device(cfg.train.device)
    ckpt = paths.checkpoints / CHECKPOINT
    fp = fingerprint(cfg, paths.prepared, (VALUES_FILE, ARRAYS_FILE, IDS_FILE, META_FILE))
    net, info = fit(cfg, panel, device, ckpt, fp, progress=show_progress())  # compute
    card = model_card(net, panel, cfg, resolved, info)
    metrics = train_metrics(
        info,
        device,
        n_series=info["n_series"],
        windows_per_epoch=info["windows_per_epoch"],
        sample_by=info["sample_by"],
        val_windows_total=info["val_windows_total"],
        val_sampled=info["val_sampled"],
    )
    return write_outputs(paths, net, card, info, metrics)  # edge: atomic writes


__all__ = [
    "AUTO_WINDOWS_PER_EPOCH",
    "CHECKPOINT",
    "PAUSE_ENV",
    "VAL_CAP",
    "TrainResult",
    "build_model",
    "fit",
    "model_card",
    "pause_for_tests",
    "residuals",
    "run_train",
    "seed_everything",
    "train_epoch",
    "val_index",
    "windows_per_epoch",
]
