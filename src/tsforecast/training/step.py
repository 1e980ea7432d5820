"""One training step behind one interface, and the update that follows it.

A ``Step`` runs forward and backward over a batch, leaves every ``.grad`` set and
returns the batch loss. Two kinds: ``PlainStep`` (the whole batch at once, mixed
precision where the device has it) and ``ShardedStep`` (the batch split over CPU
threads, gradients summed). ``make_step`` picks one; the loop never asks which.
``Updater`` then clips, steps the optimiser and the LR schedule.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from tsforecast.config import TrainConfig
from tsforecast.training.inference import amp_context
from tsforecast.training.model import LSTMForecaster


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


def make_loss(name: str) -> nn.Module:
    """``train.loss``: ``huber`` (delta 1), ``mae`` (L1: the median, as sMAPE and MASE reward) or ``mse``."""
    if name == "mae":
        return nn.L1Loss()
    return nn.HuberLoss(delta=1.0) if name == "huber" else nn.MSELoss()


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


class Step(Protocol):
    """Forward and backward over one batch: sets every ``.grad``, returns the batch loss."""

    def start_epoch(self, epoch: int) -> None: ...

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float: ...

    def close(self) -> None: ...


class PlainStep:
    """The whole batch at once; dropout draws from torch's global RNG."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, scaler: torch.amp.GradScaler) -> None:
        self.model, self.loss_fn, self.scaler = model, loss_fn, scaler

    def start_epoch(self, epoch: int) -> None:
        pass

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with amp_context(x.device, train=True):
            pred = self.model(x)
            loss = self.loss_fn(pred.float(), y)
        self.scaler.scale(loss).backward()
        return float(loss.detach())

    def close(self) -> None:
        pass


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

    def __init__(self, model: LSTMForecaster, loss_fn: nn.Module, shards: int, seed: int) -> None:
        self.model, self.loss_fn, self.shards, self.seed = model, loss_fn, shards, seed
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

    def _shard(self, k: int, x: torch.Tensor, y: torch.Tensor, weight: float) -> Any:
        with amp_context(x.device, train=True):
            pred = self.model(x, generator=self.generators[k])
            loss = self.loss_fn(pred.float(), y) * weight
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return loss.detach(), grads

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        n = len(x)
        parts = [
            (k, xs, ys)
            for k, (xs, ys) in enumerate(
                zip(x.tensor_split(self.shards), y.tensor_split(self.shards), strict=True)
            )
            if len(xs)
        ]
        futures = [self.pool.submit(self._shard, k, xs, ys, len(xs) / n) for k, xs, ys in parts]
        results = [f.result() for f in futures]  # in shard order: the sums below are deterministic
        for i, p in enumerate(self.params):
            gs = [g[i] for _, g in results if g[i] is not None]
            p.grad = torch.stack(gs).sum(0) if gs else None
        return float(sum(loss for loss, _ in results))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        torch.set_num_threads(self.threads_before)


def make_step(
    model: LSTMForecaster, loss_fn: nn.Module, scaler: torch.amp.GradScaler, shards: int, seed: int
) -> Step:
    """``ShardedStep`` for more than one shard, else ``PlainStep``."""
    if shards > 1:
        return ShardedStep(model, loss_fn, shards, seed)
    return PlainStep(model, loss_fn, scaler)


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; the fused kernel where this torch build has it for the device."""
    try:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class Updater:
    """After a step: clip the gradient, step the optimiser, the fp16 grad scaler and the schedule."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    grad_clip: float

    @classmethod
    def build(cls, model: nn.Module, cfg: TrainConfig, device: torch.device, total_steps: int) -> Updater:
        """AdamW, a cosine (down to 5 % of ``lr`` after ``total_steps``) or constant LR, and a grad
        scaler that only acts on CUDA without bf16 (fp16 autocast)."""
        optimizer = make_optimizer(model, cfg, device)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=cfg.lr * 0.05)
            if cfg.lr_schedule == "cosine"
            else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        )
        scaler = torch.amp.GradScaler(
            "cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported()
        )
        return cls(model, optimizer, scheduler, scaler, cfg.grad_clip)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def update(self) -> None:
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()


__all__ = [
    "PlainStep",
    "ShardedStep",
    "Step",
    "Updater",
    "cpu_shards",
    "fast_cpu_math",
    "make_loss",
    "make_optimizer",
    "make_step",
    "tune_allocator",
]
