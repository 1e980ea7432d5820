"""The forecast stage's pictures: ``plots/future.png`` and the rows of ``plots/future.json``.

Both show the first :data:`PLOTTED_SERIES` series of the forecast, in data order: one axis per
series with its recent history, the forecast and its band(s), in the data's units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.config import BUILTIN_TAYLOR, DataConfig
from tsforecast.io import write_png

UNITS = {BUILTIN_TAYLOR: "MW"}  # value-axis units of the builtin data sets
PLOTTED_SERIES = 4  # plots/future.* show the first series, in data order


def unit_label(data: DataConfig) -> str:
    """The value axis: ``demand (MW)`` for the builtin data, else the target's name."""
    unit = UNITS.get(data.path)
    return f"{data.target} ({unit})" if unit else data.target


def shown_series(out: pd.DataFrame, id_column: str) -> list[Any]:
    """The series the plots show: the first :data:`PLOTTED_SERIES` of the long forecast ``out``."""
    return list(pd.unique(out[id_column]))[:PLOTTED_SERIES]


def _draw(ax: Any, history: pd.DataFrame, out: pd.DataFrame, data: DataConfig) -> None:
    """On ``ax``: the last 4 H steps of ``history``, the forecast and its band(s), in the data's units."""
    import matplotlib.dates as mdates

    H = len(out)
    recent = history.iloc[-min(len(history), 4 * H) :]
    ax.plot(recent[data.timestamp_column], recent[data.target], color="black", lw=1.1, label="history")
    levels = sorted((c[3:] for c in out.columns if c.startswith("lo_")), key=float, reverse=True)
    for k, lv in enumerate(levels):
        ax.fill_between(
            out["timestamp"],
            out[f"lo_{lv}"],
            out[f"hi_{lv}"],
            color="tab:blue",
            alpha=0.15 + 0.15 * k,
            lw=0,
            label=f"{lv} % interval",
        )
    ax.plot(out["timestamp"], out["forecast"], color="tab:blue", lw=2, label="forecast")
    ax.axvline(out["timestamp"].iloc[0], color="grey", lw=0.8, ls=":")
    ax.set_ylabel(unit_label(data))
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))


def plot_future(
    history: pd.DataFrame,
    out: pd.DataFrame,
    data: DataConfig,
    id_column: str,
    shown: list[Any],
    title: str,
    path: Path,
) -> None:
    """One axis per series of ``shown`` (long frames ``history`` and ``out``); each axis is titled with
    its series when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(shown)
    fig, axes = plt.subplots(k, 1, figsize=(10, max(4.5, 2.6 * k)), dpi=110, squeeze=False)
    for ax, sid in zip(axes[:, 0], shown, strict=True):
        _draw(ax, history[history[id_column] == sid], out[out[id_column] == sid], data)
        if k > 1:
            ax.set_title(f"{id_column} = {sid}", fontsize=9)
    axes[0, 0].legend(loc="upper left", fontsize=9 if k == 1 else 8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_png(fig, path)


def future_rows(out: pd.DataFrame, id_column: str, kept: pd.DataFrame) -> list[dict[str, Any]]:
    """``plots/future.json``: per row of ``kept`` (``out`` as written, its id column dropped for one
    series) its [id,] timestamp, step (1..H within its series), forecast and bounds."""
    step = out.groupby(id_column, sort=False, observed=True).cumcount() + 1
    values = [c for c in kept.columns if c not in ("timestamp", id_column)]
    ids = [id_column] if id_column in kept.columns else []
    return [
        {
            **{c: r[c] for c in ids},
            "timestamp": str(r["timestamp"]),
            "step": int(k),
            **{c: float(r[c]) for c in values},
        }
        for k, r in zip(step, kept.to_dict("records"), strict=True)
    ]


__all__ = ["PLOTTED_SERIES", "UNITS", "future_rows", "plot_future", "shown_series", "unit_label"]
