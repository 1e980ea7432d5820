"""The training state, listed once, and the checkpoint that saves it.

``TrainState`` is the loop's bookkeeping (last epoch, best epoch and loss, the best
weights, history, time and samples), immutable: ``after_epoch`` returns the next one.
The live torch objects (model, optimiser, schedule, RNGs) are named once too, as
``Stateful`` (get, set) pairs. A checkpoint is both, flat, in one ``torch.save`` dict
loadable with ``weights_only=True``; a resume restores both or nothing.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tsforecast.io import atomic_file

log = logging.getLogger(__name__)

Stateful = tuple[Callable[[], Any], Callable[[Any], Any]]  # (get its state, restore it)
MIN_IMPROVEMENT = 1e-7  # a val loss must beat the best by this much to count as better


@dataclass(frozen=True)
class TrainState:
    """Where training stands after ``epoch`` finished epochs (0: none yet)."""

    epoch: int = 0
    best_epoch: int = 0
    best_val: float = math.inf
    best_weights: dict[str, torch.Tensor] | None = None  # the best epoch's, on the CPU
    bad_epochs: int = 0  # epochs since the best one
    history: tuple[dict[str, float], ...] = ()  # one record per epoch: epoch, losses, lr, seconds
    train_time: float = 0.0
    samples: int = 0

    @property
    def improved(self) -> bool:
        """Whether the last finished epoch is the best so far."""
        return self.epoch > 0 and self.best_epoch == self.epoch

    def after_epoch(self, record: dict[str, float], samples: int, model: nn.Module) -> TrainState:
        """The state after the epoch ``record`` describes; copies the weights if it is the best."""
        epoch, val_loss = int(record["epoch"]), record["val_loss"]
        better = val_loss < self.best_val - MIN_IMPROVEMENT
        best = (
            {"best_epoch": epoch, "best_val": val_loss, "bad_epochs": 0, "best_weights": _cpu_copy(model)}
            if better
            else {"bad_epochs": self.bad_epochs + 1}
        )
        return replace(
            self,
            epoch=epoch,
            history=(*self.history, record),
            train_time=self.train_time + record["seconds"],
            samples=self.samples + samples,
            **best,
        )

    def should_stop(self, patience: int) -> bool:
        """Early stopping: ``patience`` epochs in a row without a better val loss."""
        return self.bad_epochs >= patience

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "history": json.dumps(list(self.history))}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainState:
        """Raises ``KeyError`` for a dict of another layout."""
        state = {f.name: values[f.name] for f in fields(cls)}
        return cls(**{**state, "history": tuple(json.loads(state["history"]))})


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_checkpoint(path: Path, fingerprint: str, state: TrainState, live: Mapping[str, Stateful]) -> None:
    """Atomically write the state and every live object's state under ``path``."""
    payload = {"fingerprint": fingerprint, **state.to_dict(), **{k: get() for k, (get, _) in live.items()}}
    with atomic_file(path, "wb") as fh:
        torch.save(payload, fh)


def load_checkpoint(path: Path, fingerprint: str, live: Mapping[str, Stateful]) -> TrainState | None:
    """Restore the live objects from ``path`` and return its state, or ``None`` (and touch
    nothing) when there is no checkpoint, it is damaged, or it is of other params or data."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint is dropped, never trusted
        log.warning("ignoring unreadable checkpoint %s (%s)", path, type(e).__name__)
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        log.info("checkpoint %s is from other params or data; starting afresh", path)
        return None
    try:
        state = TrainState.from_dict(saved)
        parts = {k: saved[k] for k in live}
    except (KeyError, TypeError, ValueError) as e:
        log.warning("ignoring checkpoint %s of another layout (%s: %s)", path, type(e).__name__, e)
        return None
    for k, (_, restore) in live.items():
        restore(parts[k])
    return state


__all__ = ["Stateful", "TrainState", "load_checkpoint", "save_checkpoint"]
