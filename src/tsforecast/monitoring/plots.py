"""The monitoring PNGs: ``plots/monitor.png`` (realized error over origins with the expected band)
and ``plots/replay.png`` (a replay, round by round)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.io import write_png
from tsforecast.monitoring.types import MODEL_VERSION, ORIGIN, Expected


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(ax: Any, expected: Expected | None) -> None:
    if expected is None:
        return
    lo = max(expected.mse_scaled - expected.band * expected.sd, 0.0)
    ax.axhspan(lo, expected.upper, color="tab:green", alpha=0.12, lw=0, label="expected band (backtest)")
    ax.axhline(expected.mse_scaled, color="tab:green", lw=1.2, ls="--", label="backtest mse_scaled")
    ax.axhline(expected.upper, color="tab:green", lw=0.8, ls=":")


def plot_monitor(
    origins: pd.DataFrame, champion: str | None, expected: Expected | None, coverage: str | None, path: Path
) -> None:
    """Top: each delivery's realized ``mse_scaled`` by origin (one colour per model version), the
    champion's pooled value and the expected band. Bottom: interval coverage against its level."""
    plt = _pyplot()
    fig, (ax, cx) = plt.subplots(2, 1, figsize=(10, 6.5), dpi=110, sharex=True, height_ratios=[2.2, 1])
    if origins.empty:
        ax.text(0.5, 0.5, "no archived forecast has been scored yet", ha="center", transform=ax.transAxes)
    for k, (version, rows) in enumerate(origins.groupby(MODEL_VERSION, sort=False)):
        done, partial = rows[rows["complete"]], rows[~rows["complete"]]
        ax.plot(done[ORIGIN], done["mse_scaled"], "o", color=f"C{k % 10}", ms=5, label=f"model {version}")
        ax.plot(partial[ORIGIN], partial["mse_scaled"], "o", mfc="white", color=f"C{k % 10}", ms=5)
        if coverage and f"coverage_{coverage}" in rows:
            cx.plot(rows[ORIGIN], rows[f"coverage_{coverage}"], "o-", color=f"C{k % 10}", ms=3, lw=0.8)
    if champion is not None and "pooled_mse_scaled" in origins:
        mine = origins[origins[MODEL_VERSION] == champion]
        ax.plot(mine[ORIGIN], mine["pooled_mse_scaled"], "-", color="black", lw=1.2, label="champion, pooled")
    _band(ax, expected)
    ax.set_ylabel("realized mse_scaled")
    ax.set_title(
        "Delivered forecasts against what happened (open: horizon not fully observed yet)", fontsize=10
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    if coverage:
        cx.axhline(float(coverage) / 100, color="grey", ls="--", lw=1, label=f"nominal {coverage} %")
        cx.legend(loc="lower left", fontsize=8)
    cx.set_ylabel(f"coverage {coverage or ''}")
    cx.set_ylim(-0.05, 1.05)
    cx.grid(alpha=0.3)
    cx.set_xlabel("forecast origin")
    fig.autofmt_xdate()
    fig.tight_layout()
    write_png(fig, path)


def plot_replay(rounds: list[dict[str, Any]], path: Path) -> None:
    """Top: per round the realized error the decision saw, the expected upper, retrain decisions
    (triangles) and accepted retrains (stars); middle: the drift statistics over their thresholds;
    bottom: the champion version."""
    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), dpi=110, sharex=True, height_ratios=[2, 1.3, 0.8])
    r = np.array([x["round"] for x in rounds])
    realized = np.array(
        [np.nan if x["realized_mse_scaled"] is None else x["realized_mse_scaled"] for x in rounds]
    )
    upper = np.array([np.nan if x["expected_upper"] is None else x["expected_upper"] for x in rounds])
    ax = axes[0]
    latest = np.array(
        [np.nan if x.get("latest_mse_scaled") is None else x["latest_mse_scaled"] for x in rounds]
    )
    ax.plot(r, realized, "o-", color="black", label="realized mse_scaled (pooled, what the decision saw)")
    ax.plot(r, latest, "o", mfc="white", color="grey", label="the newest scored origin alone")
    ax.step(r, upper, where="mid", color="tab:green", label="expected upper")
    retrain = np.array([x["decision"]["retrain"] for x in rounds], dtype=bool)
    accepted = np.array([bool((x.get("gate") or {}).get("champion")) for x in rounds], dtype=bool)
    top = np.nanmax(np.concatenate([realized, latest, upper, [0.0]])) if len(r) else 1.0
    ax.plot(
        r[retrain], np.full(retrain.sum(), top * 1.08), "v", color="tab:red", ms=9, label="decision: retrain"
    )
    ax.plot(
        r[accepted],
        np.full(accepted.sum(), top * 1.16),
        "*",
        color="tab:orange",
        ms=12,
        label="gate accepted",
    )
    ax.set_ylabel("mse_scaled")
    ax.set_title("Replay: the nightly logic on held-back rows", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    dx = axes[1]
    for key, colour in (("level", "C0"), ("scale", "C1"), ("profile", "C2")):
        ratio = [_ratio(x.get("drift") or {}, key) for x in rounds]
        dx.plot(r, ratio, "o-", color=colour, ms=4, label=key)
    dx.axhline(1.0, color="tab:red", ls="--", lw=1, label="threshold")
    dx.set_ylabel("drift / threshold")
    dx.legend(loc="upper left", fontsize=8, ncol=4)
    dx.grid(alpha=0.3)
    cx = axes[2]
    versions = [x["champion_version"] if x["champion_version"] is not None else np.nan for x in rounds]
    cx.step(r, versions, where="mid", color="tab:purple")
    cx.plot(r, versions, "o", color="tab:purple", ms=4)
    cx.set_ylabel("champion")
    cx.set_xlabel("round")
    cx.grid(alpha=0.3)
    if len(r):
        cx.set_xticks(r)
    fig.tight_layout()
    write_png(fig, path)


def _ratio(drift: dict[str, Any], key: str) -> float:
    value = (drift.get("largest") or {}).get(key)
    limit = (drift.get("thresholds") or {}).get(key)
    if value is None or not limit:
        return float("nan")
    return abs(float(value)) / float(limit)


__all__ = ["plot_monitor", "plot_replay"]
