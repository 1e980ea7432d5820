"""What the train stage reads and writes, beside the loop.

The checkpoint fingerprint, the ``models/`` folder (model file, scaler, config, meta), the
contract metrics ``metrics/train.json``, the loss history and plot, and the stage result.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tsforecast.config import Config
from tsforecast.errors import TrainingError
from tsforecast.evaluation.intervals import INTERVALS_KEY
from tsforecast.io import atomic_dir, write_json, write_png
from tsforecast.paths import Paths
from tsforecast.training.card import ModelCard
from tsforecast.training.model import LSTMForecaster, save_model

CHECKPOINT = "train.pt"
META_SKIP = ("config", "series_scalers", INTERVALS_KEY)  # too big, or in scaler.json / config.json


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


def fingerprint(cfg: Config, prepared_dir: Path, files: Iterable[str]) -> str:
    """What a checkpoint must match to be resumed: the params and the prepared data ``files``."""
    h = hashlib.sha256()
    h.update(cfg.section_hash("model", "train", "window", "split").encode())
    for name in files:
        p = prepared_dir / name
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:20]


def check_window(built: tuple[int, int], cfg: Config) -> None:
    """Fail naming both when data/prepared/ was built for another (input_size, horizon) than ``cfg``."""
    expected = (cfg.window.input_size, cfg.window.horizon)
    if tuple(built) != expected:
        raise TrainingError(
            f"data/prepared/ was built for (input_size, horizon)={tuple(built)} "
            f"but params say {expected}; run `dvc repro` (or `tsforecast window`) first"
        )


def show_progress() -> bool:
    """Progress bars unless ``TQDM_DISABLE`` says otherwise."""
    return os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")


def train_metrics(info: dict[str, Any], device: torch.device, **extra: Any) -> dict[str, Any]:
    """``metrics/train.json``: the contract keys, the window counts and ``extra``."""
    return {
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
        **extra,
    }


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


def write_outputs(
    paths: Paths,
    net: LSTMForecaster,
    card: ModelCard,
    info: dict[str, Any],
    metrics: dict[str, Any],
) -> TrainResult:
    """Write ``models/`` atomically (the model file with its card; the scalers, the resolved config
    and the card's small facts as JSON beside it), the metrics and the loss plot; drop the checkpoint."""
    extra = card.to_extra()
    with atomic_dir(paths.models) as tmp:  # edge: atomic writes
        save_model(net, tmp / "model.pt", extra)
        write_json(tmp / "scaler.json", extra["series_scalers"])
        write_json(tmp / "config.json", extra["config"])
        write_json(tmp / "meta.json", {k: v for k, v in extra.items() if k not in META_SKIP})
    write_json(paths.metrics / "train.json", metrics)
    write_json(paths.plots / "loss.json", info["history"])
    plot_loss(info["history"], info["best_epoch"], paths.plots / "loss.png")
    (paths.checkpoints / CHECKPOINT).unlink(missing_ok=True)  # finished: the next run starts afresh
    return TrainResult(
        epochs=info["epochs"],
        best_epoch=info["best_epoch"],
        best_val_loss=round(info["best_val_loss"], 6),
        train_seconds=metrics["train_seconds"],
        samples_per_second=metrics["samples_per_second"],
        device=metrics["device"],
        n_params=info["n_params"],
        resumed_from_epoch=info["resumed_from_epoch"],
    )


__all__ = [
    "CHECKPOINT",
    "TrainResult",
    "check_window",
    "fingerprint",
    "plot_loss",
    "show_progress",
    "train_metrics",
    "write_outputs",
]
