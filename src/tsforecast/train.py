"""Stage ``train``: fit the LSTM with early stopping, checkpoints and a progress bar.

Batches are gathered straight from a strided view of the scaled series (no
``DataLoader``, no materialised windows). After every epoch the full training state
(weights, optimiser, schedule, RNG states, history) is checkpointed under
``.checkpoints/``, so a run killed mid-training resumes from its last epoch and, on
the CPU with the same seed, ends with the same weights as an unbroken run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
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
from torch import nn
from tqdm.auto import tqdm

from tsforecast.config import Config, ModelConfig, TrainConfig, WindowConfig
from tsforecast.errors import TrainingError
from tsforecast.io import atomic_dir, write_json
from tsforecast.model import LSTMForecaster, save_model
from tsforecast.paths import Paths
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


def select_device(preference: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA request without CUDA fails."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(
                f"train.device={preference!r} but no CUDA device is available; use train.device: auto or cpu"
            )
        index = int(preference.split(":")[1]) if ":" in preference else 0
        if index >= torch.cuda.device_count():
            raise TrainingError(
                f"train.device={preference!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(preference)


def tune_allocator() -> bool:
    """Stop glibc from returning freed memory to the OS after every batch.

    A training step frees and re-allocates the same large buffers; with glibc's
    defaults big ones are mmap'ed and unmapped each time, and the page faults cost
    more system time than the LSTM itself (measured: ~40 s of a 55 s run). Raising
    the mmap and trim thresholds (the ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` knobs, set through ``mallopt``) keeps them in the heap.
    """
    name = ctypes.util.find_library("c")
    if not name or os.environ.get("TSFORECAST_NO_MALLOPT") == "1":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def fast_cpu_math() -> None:
    """Flush denormal floats to zero and keep freed memory in the heap.

    Backpropagating through hundreds of LSTM steps makes gradients tiny; once they
    turn denormal every multiply takes a slow microcode path (measured here: 70
    instead of 620 windows/s at L=336). Flushing them to zero changes no result
    that float32 could represent.
    """
    torch.set_flush_denormal(True)
    tune_allocator()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16).

    ``TSFORECAST_CPU_BF16=0`` turns bf16 training off (fp32 everywhere on the CPU).
    """
    if os.environ.get("TSFORECAST_CPU_BF16") == "0":
        return False
    try:  # private helpers of torch.cpu; absent or failing means "no"
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_context(device: torch.device, train: bool = False) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision: on CUDA bf16 where supported (else fp16); on the CPU bf16 for the
    training step only (``train=True``) and only where the CPU has native bf16.

    On a CPU with AMX the LSTM forward/backward in bf16 (fp32 weights, optimizer and loss)
    ran 1.6x faster (benchmarks/run.py sizes, L=96) and reached the same val and test MSE
    (L=336, H=48: 0.012537 vs 0.012536). Validation and evaluation stay fp32 on the CPU.
    """
    if device.type == "cpu":
        if train and cpu_has_native_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _loss_fn(name: str) -> nn.Module:
    return nn.HuberLoss(delta=1.0) if name == "huber" else nn.MSELoss()


def _fingerprint(cfg: Config, prepared_dir: Path) -> str:
    """What a checkpoint must match to be resumed: the params and the prepared data."""
    h = hashlib.sha256()
    h.update(cfg.section_hash("model", "train", "window", "split").encode())
    for name in ("series.npy", "meta.json", "scaler.json"):
        p = prepared_dir / name
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


class WindowBatches:
    """Gathers (x, y) batches from the unfolded series; holds no copy of the windows."""

    def __init__(self, series: torch.Tensor, starts: torch.Tensor, L: int, H: int) -> None:
        self.windows = series.unfold(0, L + H, 1)  # (N, C, L+H), a view of series
        self.starts = starts
        self.L = L

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.windows[self.starts[idx]]  # (B, C, L+H), one small copy
        x = w[:, :, : self.L].transpose(1, 2)  # (B, L, C)
        y = w[:, 0, self.L :]  # (B, H)
        return x, y


@torch.no_grad()
def predict_scaled(
    model: nn.Module, batches: WindowBatches, device: torch.device, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Model forecasts and targets for every window, on the scaled axis: two (N, H) arrays."""
    model.eval()
    preds, trues = [], []
    order = torch.arange(len(batches))
    for i in range(0, len(order), batch_size):
        x, y = batches.batch(order[i : i + batch_size])
        with amp_context(device):
            p = model(x)
        preds.append(p.float().cpu().numpy())
        trues.append(y.cpu().numpy())
    if not preds:
        return np.empty((0, 0), dtype=np.float32), np.empty((0, 0), dtype=np.float32)
    return np.concatenate(preds), np.concatenate(trues)


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


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; the fused kernel where this torch build has it for the device."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def cpu_shards(cfg: TrainConfig, device: torch.device) -> int:
    """How many shards the CPU training step splits a batch into (1 = no sharding).

    ``auto``: one per torch intra-op thread, at most 8 and at least 16 windows each. On
    CUDA (one device) always 1.
    """
    if device.type != "cpu":
        return 1
    if cfg.cpu_shards == "auto":
        return max(1, min(torch.get_num_threads(), cfg.batch_size // 16, 8))
    return int(cfg.cpu_shards)


class ShardedStep:
    """Data parallelism over CPU cores inside one process.

    A batch-64 LSTM step is bound by the per-time-step latency of small matmuls, so two
    intra-op threads on one batch barely beat one. Instead each of ``shards`` Python
    threads (one intra-op thread each: the heavy ops release the GIL) runs forward and
    ``torch.autograd.grad`` on its slice of the batch with the shared weights; the
    slices' losses are weighted by their share of the batch, so the summed gradient is
    the full batch's, as with ``DistributedDataParallel``. Each shard draws its dropout
    masks from its own generator, re-seeded from (seed, epoch, shard) at every epoch, so
    a run (and a resumed run) is reproducible whatever order the threads run in.
    """

    def __init__(self, model: LSTMForecaster, shards: int, seed: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.model, self.shards, self.seed = model, shards, seed
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.generators = [torch.Generator() for _ in range(shards)]
        self.pool = ThreadPoolExecutor(shards, thread_name_prefix="tsforecast-shard")
        # One intra-op thread per shard (more where cores outnumber shards), set once for the
        # whole run: changing it per step costs more than the sharding gains. close() restores it.
        self.threads_before = torch.get_num_threads()
        torch.set_num_threads(max(1, self.threads_before // shards))

    def start_epoch(self, epoch: int) -> None:
        for k, g in enumerate(self.generators):
            g.manual_seed(self.seed * 1_000_003 + epoch * 1_009 + k)

    def _shard(self, k: int, x: torch.Tensor, y: torch.Tensor, weight: float, loss_fn: nn.Module) -> Any:
        with amp_context(x.device, train=True):
            pred = self.model(x, generator=self.generators[k])
            loss = loss_fn(pred.float(), y) * weight
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return loss.detach(), grads

    def __call__(self, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> float:
        """Forward and backward over the batch; sets every ``.grad``; returns the batch loss."""
        n = len(x)
        parts = [
            (k, xs, ys)
            for k, (xs, ys) in enumerate(
                zip(x.tensor_split(self.shards), y.tensor_split(self.shards), strict=True)
            )
            if len(xs)
        ]
        futures = [self.pool.submit(self._shard, k, xs, ys, len(xs) / n, loss_fn) for k, xs, ys in parts]
        results = [f.result() for f in futures]  # in shard order: the sums below are deterministic
        for i, p in enumerate(self.params):
            gs = [g[i] for _, g in results if g[i] is not None]
            p.grad = torch.stack(gs).sum(0) if gs else None
        return float(sum(loss for loss, _ in results))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        torch.set_num_threads(self.threads_before)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    from tsforecast.io import atomic_file

    with atomic_file(path, "wb") as fh:
        torch.save(state, fh)


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint is dropped, never trusted
        log.warning("ignoring unreadable checkpoint %s (%s)", path, type(e).__name__)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s is from other params or data; starting afresh", path)
        return None
    return state


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
    L, H = prepared.input_size, prepared.horizon
    seed_everything(tc.seed)
    series = torch.from_numpy(np.ascontiguousarray(prepared.series, dtype=np.float32)).to(device)
    bounds = prepared.bounds
    train_starts = torch.from_numpy(window_starts(bounds, "train", L, H, prepared.stride))
    val_starts = torch.from_numpy(window_starts(bounds, "val", L, H, 1))
    train_b = WindowBatches(series, train_starts.to(device), L, H)
    val_b = WindowBatches(series, val_starts.to(device), L, H)
    if len(train_b) == 0 or len(val_b) == 0:
        raise TrainingError(
            f"no {'train' if len(train_b) == 0 else 'val'} windows; check split.* and window.*"
        )

    model = build_model(cfg, n_features=series.shape[1]).to(device)
    optimizer = make_optimizer(model, tc, device)
    steps_per_epoch = math.ceil(len(train_b) / tc.batch_size)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=tc.epochs * steps_per_epoch, eta_min=tc.lr * 0.05
        )
        if tc.lr_schedule == "cosine"
        else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    )
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported()
    )
    loss_fn = _loss_fn(tc.loss)
    gen = torch.Generator().manual_seed(tc.seed)

    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state, bad_epochs, start_epoch = math.inf, 0, None, 0, 1
    train_time, samples = 0.0, 0
    resumed_from = 0
    if checkpoint_path is not None and tc.resume:
        state = _load_checkpoint(checkpoint_path, fingerprint)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            history = json.loads(state["history"])
            best_val, best_epoch = state["best_val"], state["best_epoch"]
            best_state, bad_epochs = state["best_state"], state["bad_epochs"]
            train_time, samples = state["train_time"], state["samples"]
            resumed_from = state["epoch"]
            start_epoch = resumed_from + 1
            log.info("resuming from checkpoint after epoch %d (best val %.5f)", state["epoch"], best_val)

    n_params = model.n_params()
    shards = cpu_shards(tc, device)
    sharded = ShardedStep(model, shards, tc.seed) if shards > 1 else None
    log.info(
        "training %s (%d params) on %s%s: %d train / %d val windows, %d steps/epoch",
        cfg.model.cell.upper(),
        n_params,
        device,
        f", batches split over {shards} threads" if sharded else "",
        len(train_b),
        len(val_b),
        steps_per_epoch,
    )
    try:
        for epoch in range(start_epoch, tc.epochs + 1):
            if bad_epochs >= tc.patience:  # also true on resuming a run that had already stopped
                break
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(len(train_b), generator=gen).to(device)
            running, seen = 0.0, 0
            bar = tqdm(
                range(steps_per_epoch),
                desc=f"epoch {epoch}/{tc.epochs}",
                unit="batch",
                leave=False,
                disable=not progress,
                mininterval=0.5,
            )
            if sharded is not None:
                sharded.start_epoch(epoch)
            for b in bar:
                x, y = train_b.batch(perm[b * tc.batch_size : (b + 1) * tc.batch_size])
                optimizer.zero_grad(set_to_none=True)
                if sharded is not None:
                    loss_value = sharded(x, y, loss_fn)  # sets the grads
                else:
                    with amp_context(device, train=True):
                        pred = model(x)
                        loss = loss_fn(pred.float(), y)
                    scaler.scale(loss).backward()
                    loss_value = float(loss.detach())
                if not math.isfinite(loss_value):  # before the step: the weights stay as they were
                    raise TrainingError(
                        f"train loss is {loss_value} at epoch {epoch}, batch {b + 1}/{steps_per_epoch}; "
                        f"training stopped - lower train.lr (now {tc.lr:g}), keep train.grad_clip > 0 "
                        "or check the data for extreme values"
                    )
                if tc.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                running += loss_value * len(x)
                seen += len(x)
                if b % 10 == 0:
                    bar.set_postfix(loss=f"{running / seen:.4f}")
            bar.close()
            if device.type == "cuda":
                torch.cuda.synchronize()
            epoch_time = time.perf_counter() - t0
            train_time += epoch_time
            samples += seen
            pv, tv = predict_scaled(model, val_b, device)
            val_loss = float(np.mean((pv - tv) ** 2))
            if not math.isfinite(val_loss):
                raise TrainingError(f"validation loss is {val_loss} at epoch {epoch}; training stopped")
            improved = val_loss < best_val - 1e-7
            if improved:
                best_val, best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": running / max(seen, 1),
                    "val_loss": val_loss,
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": epoch_time,
                }
            )
            log.info(
                "epoch %d/%d: train %.5f, val %.5f%s, %.1fs (%.0f windows/s)",
                epoch,
                tc.epochs,
                running / max(seen, 1),
                val_loss,
                " *" if improved else "",
                epoch_time,
                seen / max(epoch_time, 1e-9),
            )
            if checkpoint_path is not None:
                _save_checkpoint(
                    checkpoint_path,
                    {
                        "fingerprint": fingerprint,
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "generator": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "history": json.dumps(history),
                        "best_val": best_val,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "bad_epochs": bad_epochs,
                        "train_time": train_time,
                        "samples": samples,
                    },
                )
    finally:
        if sharded is not None:
            sharded.close()

    stopped_early = bool(history) and history[-1]["epoch"] < tc.epochs  # only patience ends the loop early
    assert best_state is not None
    model.load_state_dict(best_state)  # the best epoch's weights, not the last
    model.eval()
    info = {
        "history": history,
        "best_val_loss": best_val,
        "best_epoch": best_epoch,
        "epochs": len(history),
        "stopped_early": stopped_early,
        "train_seconds": train_time,
        "samples": samples,
        "samples_per_second": samples / max(train_time, 1e-9),
        "n_params": n_params,
        "resumed_from_epoch": resumed_from,
        "n_train_windows": len(train_b),
        "n_val_windows": len(val_b),
    }
    return model.cpu(), info


def plot_loss(history: list[dict[str, float]], best_epoch: int, path: Path) -> None:
    """Train and val loss per epoch, the kept epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsforecast.io import atomic_file

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3, label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", ms=3, label="val MSE")
    ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=f"kept: epoch {best_epoch}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units, log)")
    ax.set_title("Training and validation loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


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
        write_json(tmp / "meta.json", {k: v for k, v in extra.items() if k not in ("config", "scaler")})
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


__all__ = ["TrainResult", "WindowBatches", "fit", "predict_scaled", "run_train", "select_device"]
