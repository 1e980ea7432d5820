"""The reference: a plain PyTorch training loop of the same model, with nothing tuned.

Materialised windows in a ``TensorDataset``, a shuffling ``DataLoader``, default
``torch.optim.Adam``, MSE. No gradient clipping, no schedule: what a first version of
the training script would look like. The process-wide CPU settings (flush-denormal and
the allocator thresholds) are set by its worker in ``workers.py``, as for our loop, so
the comparison measures the loops, not those settings.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.bench_data import SpeedSetup
from tsforecast.training.train import build_model


def materialise(series: np.ndarray, starts: np.ndarray, L: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of every window: X (N, L, C) and Y (N, H)."""
    X = np.stack([series[s : s + L] for s in starts]).astype("float32")  # (N, L, C)
    Y = np.stack([series[s + L : s + L + H, 0] for s in starts]).astype("float32")  # (N, H)
    return torch.from_numpy(X), torch.from_numpy(Y)


@torch.no_grad()
def val_mse(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, batch_size: int = 1024) -> float:
    model.eval()
    sq, n = 0.0, 0
    for i in range(0, len(X), batch_size):
        p = model(X[i : i + batch_size])
        sq += float(((p - Y[i : i + batch_size]) ** 2).sum())
        n += Y[i : i + batch_size].numel()
    return sq / max(n, 1)


def train_plain(setup: SpeedSetup) -> dict[str, Any]:
    """Train for ``cfg.train.epochs`` epochs; per-epoch seconds (training only) and val MSE."""
    cfg, prep = setup.cfg, setup.prepared
    L, H, B = cfg.window.input_size, cfg.window.horizon, cfg.train.batch_size
    torch.manual_seed(cfg.train.seed)
    X, Y = materialise(prep.series, setup.train_starts, L, H)
    Xv, Yv = materialise(prep.series, setup.val_starts, L, H)
    loader = DataLoader(
        TensorDataset(X, Y),
        batch_size=B,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    model = build_model(cfg, n_features=X.shape[2])  # the same constructor call as tsforecast.training.train
    optimizer = torch.optim.Adam(model.parameters())
    loss_fn = nn.MSELoss()
    history = []
    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        running, seen, steps = 0.0, 0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(xb)
            seen += len(xb)
            steps += 1
        seconds = time.perf_counter() - t0
        history.append(
            {
                "epoch": epoch,
                "train_loss": running / max(seen, 1),
                "val_loss": val_mse(model, Xv, Yv),
                "seconds": seconds,
                "samples": seen,
                "steps": steps,
            }
        )
    return {"history": history, "n_train_windows": len(X), "n_val_windows": len(Xv)}
