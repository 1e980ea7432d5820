"""Plots of a panel's evaluation, rendered to PNG bytes (the stage writes them once all are ready).

``plot_series``: a grid of series, each its last test window's history tail, actuals, the LSTM
with its interval band and the Naive2 and seasonal-naive baselines (the worst series by MASE, or
a spread of series); ``plot_error_by_step``: scaled MSE per horizon step averaged over series.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.evaluation.scoring import FORECASTERS, MODEL_KEY

COLORS = {
    MODEL_KEY: "tab:blue",
    "repeat_last": "tab:grey",
    "seasonal_naive": "tab:orange",
    "naive2": "tab:green",
}
LABELS = {
    MODEL_KEY: "LSTM",
    "repeat_last": "repeat last",
    "seasonal_naive": "seasonal naive",
    "naive2": "Naive2",
}


@dataclass(frozen=True)
class SeriesView:
    """Series ``i``'s last test window in data units: history tail, actuals, forecasts, band."""

    sid: Any
    history_t: pd.DatetimeIndex
    history: np.ndarray
    future_t: pd.DatetimeIndex
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]
    band: tuple[np.ndarray, np.ndarray] | None


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def plot_series(
    views: list[SeriesView], table: pd.DataFrame, picks: list[int], ylabel: str, title: str
) -> bytes:
    """A grid of series: history tail, actual, LSTM (with its band) and the baselines; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    n = len(views)
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.4 * rows), dpi=110, squeeze=False)
    for ax, view, i in zip(axes.flat, views, picks, strict=False):
        ax.plot(view.history_t, view.history, color="black", lw=1, alpha=0.45, label="history")
        ax.plot(view.future_t, view.actual, color="black", lw=1.6, label="actual")
        if view.band is not None:
            ax.fill_between(
                view.future_t, *view.band, color=COLORS[MODEL_KEY], alpha=0.15, label="LSTM interval"
            )
        for name in ("seasonal_naive", "naive2", MODEL_KEY):
            main = name == MODEL_KEY
            ax.plot(view.future_t, view.forecasts[name], color=COLORS[name], lw=2 if main else 1.2,
                    ls="-" if main else "--", label=LABELS[name])  # fmt: skip
        row = table.iloc[i]
        ax.set_title(
            f"{view.sid}: MASE {row[f'{MODEL_KEY}_mase']:.2f} (Naive2 {row['naive2_mase']:.2f}), "
            f"sMAPE {row[f'{MODEL_KEY}_smape']:.1f} (Naive2 {row['naive2_smape']:.1f})",
            fontsize=9,
        )
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, frameon=False)
    fig.suptitle(title, y=0.995, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return _png(fig)


def plot_error_by_step(rows: list[dict[str, float]], n_series: int) -> bytes:
    """Scaled MSE by horizon step averaged over series, the LSTM against the baselines; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for name in FORECASTERS:
        ys = [r[name] for r in rows]
        main = name == MODEL_KEY
        ax.plot(steps, ys, color=COLORS[name], lw=2 if main else 1.3, ls="-" if main else "--",
                label=f"{LABELS[name]} (mean {np.mean(ys):.4f})")  # fmt: skip
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MSE (each series' train-fit scale)")
    ax.set_title(f"Error by horizon step, averaged over {n_series} series")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return _png(fig)


__all__ = ["COLORS", "LABELS", "SeriesView", "plot_error_by_step", "plot_series"]
