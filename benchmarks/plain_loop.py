"""The reference: a plain PyTorch training loop of the same model, with nothing tuned.

Materialised windows in a ``TensorDataset``, a shuffling ``DataLoader``, default
``torch.optim.Adam``, MSE. No gradient clipping, no schedule: what a first version of
the training script would look like. The windows are its own, cut with plain torch from the
scaled series, at the start rows of the windows ``fit`` trains and validates on
(``SpeedSetup.train_index`` / ``val_index``), so both loops see the same windows. The
process-wide CPU settings (flush-denormal and the allocator thresholds) are set by its worker
in ``workers.py``, as for our loop, so the comparison measures the loops, not those settings.
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


def scaled_series(setup: SpeedSetup) -> torch.Tensor:
    """The one series standardised with its train-row mean and std: (rows, C) float32."""
    panel = setup.panel
    f32 = np.float32
    values = (panel.series(0) - panel.mean[0].astype(f32)) / panel.std[0].astype(f32)  # as Panel.gather
    return torch.from_numpy(np.ascontiguousarray(values, dtype=f32))


def materialise(
    series: torch.Tensor, starts: np.ndarray, L: int, H: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of every window: X (N, L, C) and Y (N, H)."""
    windows = series.unfold(0, L + H, 1)  # (rows-L-H+1, C, L+H), a view
    w = windows[torch.from_numpy(starts)]  # (N, C, L+H), the copy
    return w[:, :, :L].transpose(1, 2).contiguous(), w[:, 0, L:].contiguous()  # (N, L, C), (N, H)


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
    cfg = setup.cfg
    L, H, B = cfg.window.input_size, cfg.window.horizon, cfg.train.batch_size
    if (setup.train_index[:, 0] != 0).any() or (setup.val_index[:, 0] != 0).any():
        raise ValueError("the plain loop trains on one series; the speed setup holds a panel of more")
    torch.manual_seed(cfg.train.seed)
    series = scaled_series(setup)
    X, Y = materialise(series, setup.train_index[:, 1], L, H)
    Xv, Yv = materialise(series, setup.val_index[:, 1], L, H)
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
