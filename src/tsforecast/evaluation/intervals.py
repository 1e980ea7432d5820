"""Prediction intervals by split conformal prediction, per horizon step; interval metrics.

Method (chosen by measurement, see README "Prediction intervals"): right after training,
the model forecasts every validation window; the signed residuals ``y - p`` (scaled units)
of each horizon step ``h`` give an empirical distribution. Its quantiles on a fine grid
of probabilities (:data:`GRID`) are stored with the model (``extra["intervals"]``), so any
level can be served later without retraining. The interval of level ``l`` at step ``h`` is

    [p_h + q_h(a), p_h + q_h(1 - a)],   a = (1 - l/100) / 2, finite-sample adjusted,

asymmetric when the residuals are (Lei et al. 2018's split conformal, one score per step as
in Stankeviciute et al. 2021). Pure numpy: no torch, no MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tsforecast.errors import ConfigError, ModelLoadError

INTERVALS_KEY = "intervals"  # in the model file's extra
METHOD = "split_conformal_per_step"
GRID = np.round(np.arange(1, 200) / 200, 4)  # probabilities 0.005 .. 0.995
DEFAULT_LEVELS = (80.0,)


def level_name(level: float) -> str:
    """``80`` -> ``"80"``, ``97.5`` -> ``"97.5"``: the suffix of ``lo_``/``hi_`` and the metrics key."""
    return f"{float(level):g}"


def check_levels(levels: Sequence[float], where: str = "forecast.levels") -> tuple[float, ...]:
    """Levels in percent, each in (0, 99]; fails naming the bad value."""
    out = []
    for v in levels:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 99 or not math.isfinite(v):
            raise ConfigError(
                f"{where}: level {v!r} is not a percentage in (0, 99]; use e.g. [80] or [50, 80, 95]"
            )
        out.append(float(v))
    return tuple(out)


@dataclass(frozen=True)
class Calibration:
    """Per-step quantiles of validation residuals on :data:`GRID`, (G, H); empty if none."""

    quantiles: np.ndarray | None  # (G, H), scaled units
    n: int = 0  # validation windows the quantiles come from
    default_levels: tuple[float, ...] = DEFAULT_LEVELS
    method: str = METHOD
    holdout: dict[str, dict[str, float]] = field(default_factory=dict)  # val-only check, see calibrate

    @property
    def empty(self) -> bool:
        return self.quantiles is None

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> Calibration:
        """What ``tsforecast train`` stored under ``extra["intervals"]`` (empty when absent)."""
        d = extra.get(INTERVALS_KEY)
        if not d:
            return cls(quantiles=None)
        q = np.asarray(d["quantiles"], dtype="float64")  # (G, H)
        if q.ndim != 2 or q.shape[0] != len(GRID) or not np.array_equal(np.round(d["grid"], 4), GRID):
            raise ValueError(f"interval calibration has shape {q.shape}, expected ({len(GRID)}, horizon)")
        return cls(
            quantiles=q,
            n=int(d["n"]),
            default_levels=tuple(float(v) for v in d.get("default_levels", DEFAULT_LEVELS)),
            method=str(d.get("method", METHOD)),
            holdout=dict(d.get("holdout", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (plain lists), for the model file's ``extra``."""
        assert self.quantiles is not None
        return {
            "method": self.method,
            "n": self.n,
            "default_levels": list(self.default_levels),
            "grid": GRID.tolist(),
            "quantiles": self.quantiles.tolist(),
            "holdout": self.holdout,
        }

    def quantile(self, p: float) -> np.ndarray:
        """(H,): each step's residual quantile at probability ``p`` (linear on the grid, clipped)."""
        assert self.quantiles is not None
        p = float(np.clip(p, GRID[0], GRID[-1]))
        i = int(np.clip(np.searchsorted(GRID, p) - 1, 0, len(GRID) - 2))
        w = (p - GRID[i]) / (GRID[i + 1] - GRID[i])
        return (1 - w) * self.quantiles[i] + w * self.quantiles[i + 1]

    def probabilities(self, level: float) -> tuple[float, float]:
        """The residual quantiles' probabilities for ``level``, with the finite-sample correction
        ``ceil((n + 1)(1 - a)) / n`` of split conformal prediction."""
        a = (1 - level / 100) / 2
        hi = min(1.0, (1 - a) * (self.n + 1) / max(self.n, 1))
        return 1 - hi, hi

    def bounds(self, point: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(N, H) scaled point forecasts -> (lo, hi), each (N, H), with lo <= point <= hi."""
        p_lo, p_hi = self.probabilities(level)
        lo = point + self.quantile(p_lo)[None]
        hi = point + self.quantile(p_hi)[None]
        return np.minimum(lo, point), np.maximum(hi, point)


def serving_levels(calibration: Calibration, levels: Sequence[float] | None) -> tuple[float, ...]:
    """The levels to serve: ``levels``, or the model's default ones when None; levels asked of a
    model without a calibration fail naming them and the fix."""
    chosen = calibration.default_levels if levels is None else tuple(levels)
    if chosen and calibration.empty:
        raise ModelLoadError(
            f"the model file holds no interval calibration ('{INTERVALS_KEY}' in its metadata), so "
            f"levels {list(chosen)} cannot be served; retrain with `tsforecast train` (or ask for levels=[])"
        )
    return chosen


def calibrate(
    residuals: np.ndarray, default_levels: Sequence[float] = DEFAULT_LEVELS, holdout: bool = True
) -> Calibration:
    """Per-step quantiles of ``residuals`` (N, H) = y - p on validation windows, in time order.

    With ``holdout`` the same method is also fit on the first half of the windows and its
    coverage measured on the second half (the gap of H windows between them keeps the
    targets apart): a validation-only check of calibration, stored as ``holdout``.
    """
    r = np.asarray(residuals, dtype="float64")
    if r.ndim != 2 or len(r) < 2:
        raise ValueError(f"need (windows >= 2, horizon) residuals to calibrate, got shape {r.shape}")
    check = {}
    H = r.shape[1]
    if holdout and len(r) >= 2 * H + 20:
        half = len(r) // 2
        first = calibrate(r[:half], default_levels, holdout=False)
        later = r[half + H :]
        for level in default_levels:
            lo, hi = first.bounds(np.zeros_like(later), level)
            check[level_name(level)] = {
                "coverage": float(np.mean((later >= lo) & (later <= hi))),
                "n_calibration": half,
                "n_check": len(later),
            }
    return Calibration(
        quantiles=np.quantile(r, GRID, axis=0),  # (G, H)
        n=len(r),
        default_levels=tuple(float(v) for v in default_levels),
        holdout=check,
    )


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss of quantile forecasts ``q`` at probability ``tau``."""
    d = np.asarray(y, dtype="float64") - np.asarray(q, dtype="float64")
    return float(np.mean(np.maximum(tau * d, (tau - 1) * d)))


def interval_metrics(
    y: np.ndarray, point: np.ndarray, calibration: Calibration, levels: Sequence[float]
) -> tuple[dict[str, dict[str, float]], float]:
    """Coverage and mean width (scaled) per level over every window and step of (N, H) arrays,
    and the scaled pinball loss averaged over each level's two quantiles."""
    by_level: dict[str, dict[str, float]] = {}
    losses = []
    for level in levels:
        lo, hi = calibration.bounds(point, level)
        a = (1 - level / 100) / 2
        by_level[level_name(level)] = {
            "coverage": float(np.mean((y >= lo) & (y <= hi))),
            "width_scaled": float(np.mean(hi - lo)),
        }
        losses += [pinball(y, lo, a), pinball(y, hi, 1 - a)]
    return by_level, float(np.mean(losses)) if losses else float("nan")


__all__ = [
    "DEFAULT_LEVELS",
    "GRID",
    "INTERVALS_KEY",
    "Calibration",
    "calibrate",
    "check_levels",
    "interval_metrics",
    "level_name",
    "pinball",
    "serving_levels",
]
