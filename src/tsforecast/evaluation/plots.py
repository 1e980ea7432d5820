"""The evaluate and backtest stages' PNGs, rendered to bytes (a stage writes them once all are ready).

* :func:`plot_windows`: a grid of test windows (a spread of them, or the worst), each with its
  history tail, actuals, the LSTM with its interval band, Naive2 and seasonal naive;
* :func:`plot_error_by_step`: scaled MSE per horizon step (averaged over series), every forecaster;
* :func:`plot_backtest`: scaled MSE and OWA of the forecasts from each origin, every forecaster.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.evaluation.names import COLORS, FORECASTERS, LABELS, MODEL_KEY
from tsforecast.evaluation.views import WindowView


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _style(name: str) -> dict[str, Any]:
    main = name == MODEL_KEY
    return {"color": COLORS[name], "lw": 2 if main else 1.3, "ls": "-" if main else "--"}


def plot_windows(views: list[WindowView], ylabel: str, title: str) -> bytes:
    """A grid of windows: history tail, actual, LSTM (with its band) and the baselines; PNG bytes."""
    plt = _pyplot()
    import matplotlib.dates as mdates

    n = max(1, len(views))
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax, view in zip(axes.flat, views, strict=False):
        ax.plot(view.history_t, view.history, color="black", lw=1, alpha=0.45, label="history")
        ax.plot(view.future_t, view.actual, color="black", lw=1.6, label="actual")
        if view.band is not None:
            ax.fill_between(
                view.future_t, *view.band, color=COLORS[MODEL_KEY], alpha=0.15, label="LSTM interval"
            )
        for name in ("seasonal_naive", "naive2", MODEL_KEY):
            ax.plot(view.future_t, view.forecasts[name], label=LABELS[name], **_style(name))
        ax.axvline(view.future_t[0], color="grey", lw=0.8, ls=":")
        ax.set_title(view.title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    for ax in list(axes.flat)[len(views) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, frameon=False)
    fig.suptitle(title, y=0.995, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return _png(fig)


def plot_error_by_step(rows: list[dict[str, float]], n_series: int, n_windows: int) -> bytes:
    """Scaled MSE by horizon step averaged over series, the LSTM against the baselines; PNG bytes."""
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for name in FORECASTERS:
        ys = [r[name] for r in rows]
        ax.plot(steps, ys, label=f"{LABELS[name]} (mean {np.mean(ys):.4f})", **_style(name))
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MSE (train-fit standard scale, unitless)")
    ax.set_title(f"Error by horizon step: {n_windows} test windows, averaged over {n_series} series")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return _png(fig)


def plot_backtest(metrics: dict[str, Any]) -> bytes:
    """Scaled MSE (left) and OWA (right) of the forecasts from each origin, every forecaster; PNG bytes."""
    plt = _pyplot()
    import matplotlib.dates as mdates

    cuts = pd.to_datetime([c["cutoff"] for c in metrics["by_cutoff"]])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for ax, key in zip(axes, ("mse_scaled", "owa"), strict=True):
        for name in FORECASTERS:
            values = [
                c[key] if name == MODEL_KEY else c["baselines"][name][key] for c in metrics["by_cutoff"]
            ]
            pooled = metrics[key] if name == MODEL_KEY else metrics["baselines"][name][key]
            ax.plot(cuts, values, marker="o", label=f"{LABELS[name]} (pooled {pooled:.4f})", **_style(name))
        ax.set_xlabel("forecast origin (last observed step)")
        ax.set_ylabel("OWA (against Naive2)" if key == "owa" else "MSE (train-fit standard scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Backtest over {metrics['n_series']} series: {metrics['n_cutoffs']} origins each, "
        f"H={metrics['horizon']}, no refit"
    )
    fig.tight_layout()
    return _png(fig)


__all__ = ["plot_backtest", "plot_error_by_step", "plot_windows"]
