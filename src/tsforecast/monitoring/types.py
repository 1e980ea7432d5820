"""Names the monitoring modules share: file and column names, the small result types.

Below every other module of :mod:`tsforecast.monitoring` (it imports none of them), so none of
them imports another just for a name.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tsforecast.paths import Paths

# ---------------------------------------------------------------------------- where things are

ARCHIVE_DIR = "archive"  # forecasts/archive/: one Parquet file per delivered forecast (contract)
DECISIONS_DIR = "decisions"  # forecasts/decisions/: one JSON file per decision or gate verdict
MONITOR_JSON = "monitor.json"  # metrics/ (contract)
MONITOR_SERIES = "monitor_by_series.parquet"  # metrics/: per origin and series
MONITOR_PNG = "monitor.png"  # plots/
REPLAY_JSON = "replay.json"  # reports/ (contract)
REPLAY_PNG = "replay.png"  # plots/
REPLAY_DIR = ".replay"  # scratch roots of `tsforecast replay`, one per run (git- and DVC-ignored)

# ---------------------------------------------------------------------------- archive columns

ORIGIN = "origin"  # the series' last observed timestamp when the forecast was made (contract)
MODEL_VERSION = "model_version"  # registered version ("3") or "local-<sha256 of model.pt>" (contract)
DELIVERED_AT = "delivered_at"  # UTC time the forecast was archived
TRAIN_MEAN = "train_mean"  # the model's train-fit scaler of the series' target (its model card)
TRAIN_STD = "train_std"
FILE = "file"  # added by the reader: the archive file a row came from
LOCAL_PREFIX = "local-"


def archive_dir(paths: Paths) -> Path:
    """``forecasts/archive/`` of a checkout."""
    return paths.forecasts / ARCHIVE_DIR


def decisions_dir(paths: Paths) -> Path:
    """``forecasts/decisions/`` of a checkout."""
    return paths.forecasts / DECISIONS_DIR


def finite_or_none(value: Any) -> float | None:
    """A float for JSON: None for NaN, inf and None."""
    if value is None:
        return None
    x = float(value)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Expected:
    """What the backtest promised for the champion: its ``mse_scaled`` and the band's upper edge."""

    mse_scaled: float
    sd: float  # spread of mse_scaled across the backtest's cutoffs (robust sd), floored
    upper: float
    n_cutoffs: int
    band: float
    source: str  # where the backtest came from (a file, or an MLflow run)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    """One rule of the decision: what was measured, against which threshold, and whether it fired."""

    rule: str  # "realized" | "drift" | "age" | "champion"
    triggered: bool
    detail: str  # one line a person can act on
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Decision:
    """Retrain or not, and why: ``reasons`` are the fired rules (or why nothing fired)."""

    retrain: bool
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.retrain,
            "reasons": list(self.reasons),
            "checks": [asdict(c) for c in self.checks],
        }


__all__ = [
    "ARCHIVE_DIR",
    "DECISIONS_DIR",
    "DELIVERED_AT",
    "FILE",
    "LOCAL_PREFIX",
    "MODEL_VERSION",
    "MONITOR_JSON",
    "MONITOR_PNG",
    "MONITOR_SERIES",
    "ORIGIN",
    "REPLAY_DIR",
    "REPLAY_JSON",
    "REPLAY_PNG",
    "TRAIN_MEAN",
    "TRAIN_STD",
    "Check",
    "Decision",
    "Expected",
    "archive_dir",
    "decisions_dir",
    "finite_or_none",
]
