"""Stage ``evaluate``: score the model and two naive baselines on every test window.

All metrics are over every stride-1 test window and every horizon step.
``*_scaled`` metrics use the standard scale fit on the train rows (the literature's
convention); the rest are in the data's own units. Baselines:

* ``repeat_last``: the window's last value, repeated H times;
* ``seasonal_naive``: the value one season (``evaluate.seasonal_period``) earlier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsforecast.config import DataConfig, EvaluateConfig, ForecastConfig, OrchestrationConfig
from tsforecast.dataset.panel import is_panel_dir
from tsforecast.dataset.window import Prepared, load_prepared, sliding_windows, window_starts
from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, Calibration, calibrate, interval_metrics
from tsforecast.evaluation.units import value_label
from tsforecast.io import atomic_file, write_json, write_png
from tsforecast.paths import BY_SERIES_FILE, WORST_PLOT, Paths
from tsforecast.training.inference import WindowBatches, predict_scaled
from tsforecast.training.model import LSTMForecaster, load_model

log = logging.getLogger(__name__)

MODEL_KEY = "lstm"
BASELINES = ("repeat_last", "seasonal_naive")


@dataclass(frozen=True)
class EvaluateResult:
    n_windows: int
    mse_scaled: float
    repeat_last_mse_scaled: float
    seasonal_naive_mse_scaled: float
    beats_baselines: bool


def repeat_last(x_target: np.ndarray, horizon: int) -> np.ndarray:
    """(N, L) input target windows -> (N, H): the last value repeated."""
    return np.repeat(x_target[:, -1:], horizon, axis=1)


def seasonal_naive(x_target: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """(N, L) -> (N, H): step h repeats the value ``period * ceil(h / period)`` steps back."""
    L = x_target.shape[1]
    if period > L:
        raise ConfigError(
            f"evaluate.seasonal_period={period} exceeds window.input_size={L}; the seasonal-naive "
            "baseline may only look inside the input window - raise input_size or lower the period"
        )
    h = np.arange(1, horizon + 1)
    pos = L + h - 1 - period * np.ceil(h / period).astype(int)  # index into the input window
    return x_target[:, pos]


def point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MSE, MAE, RMSE and sMAPE (percent) over every element."""
    err = p - y
    mse = float(np.mean(err**2))
    denom = np.abs(y) + np.abs(p)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom, dtype="float64"), where=denom > 0)
    return {
        "mse": mse,
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(mse)),
        "smape": float(100 * np.mean(ratio)),
    }


def mase_scale(train_target: np.ndarray, period: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on the train rows (Hyndman & Koehler)."""
    m = period if len(train_target) > period else 1
    d = np.abs(train_target[m:] - train_target[:-m])
    return float(np.mean(d)) if len(d) else float("nan")


def all_metrics(
    y_scaled: np.ndarray, p_scaled: np.ndarray, prepared: Prepared, mase_denominator: float
) -> dict[str, Any]:
    """Scaled MSE/MAE plus MSE, MAE, RMSE, MASE and sMAPE in the data's units."""
    y = prepared.scaler.inverse_target(y_scaled.astype("float64"))
    p = prepared.scaler.inverse_target(p_scaled.astype("float64"))
    scaled = point_metrics(y_scaled.astype("float64"), p_scaled.astype("float64"))
    units = point_metrics(y, p)
    return {
        "mse_scaled": scaled["mse"],
        "mae_scaled": scaled["mae"],
        **units,
        "mase": units["mae"] / mase_denominator if mase_denominator > 0 else float("nan"),
        "n_windows": int(y.shape[0]),
    }


@dataclass(frozen=True)
class Scores:
    """Everything evaluate computes for one model on one prepared data set."""

    metrics: dict[str, Any]  # the contract of metrics/evaluate.json
    by_step: pd.DataFrame  # step, <name>_mse_scaled, <name>_mae_scaled
    starts: np.ndarray  # (N,) window start rows
    y: np.ndarray  # (N, H) scaled targets
    preds: dict[str, np.ndarray]  # name -> (N, H) scaled forecasts


def score(model: LSTMForecaster, prepared: Prepared, seasonal_period: int, part: str = "test") -> Scores:
    """Score ``model`` and the baselines on every stride-1 window of ``part``."""
    L, H = prepared.input_size, prepared.horizon
    if (
        model.args.input_size != L
        or model.args.horizon != H
        or model.args.n_features != len(prepared.columns)
    ):
        raise DataError(
            f"model expects (input_size, horizon, features)="
            f"{(model.args.input_size, model.args.horizon, model.args.n_features)} but the data gives "
            f"{(L, H, len(prepared.columns))}; retrain or re-window"
        )
    starts = window_starts(prepared.bounds, part, L, H, 1)
    series = torch.from_numpy(np.ascontiguousarray(prepared.series, dtype=np.float32))
    batches = WindowBatches(series, torch.from_numpy(starts), L, H)
    p_model, y = predict_scaled(model, batches, torch.device("cpu"))
    x_target = np.asarray(sliding_windows(prepared.series, L, H)[0][starts, :, 0], dtype="float32")  # (N, L)
    preds = {
        MODEL_KEY: p_model,
        "repeat_last": repeat_last(x_target, H),
        "seasonal_naive": seasonal_naive(x_target, H, seasonal_period),
    }
    train_target = prepared.scaler.inverse_target(
        np.asarray(prepared.series[slice(*prepared.bounds.train), 0], dtype="float64")
    )
    denom = mase_scale(train_target, seasonal_period)
    scored = {name: all_metrics(y, p, prepared, denom) for name, p in preds.items()}
    metrics: dict[str, Any] = dict(scored[MODEL_KEY])
    metrics["baselines"] = {name: scored[name] for name in BASELINES}
    metrics["beats"] = {name: metrics["mse_scaled"] < scored[name]["mse_scaled"] for name in BASELINES}
    metrics["horizon"] = H
    metrics["input_size"] = L
    metrics["seasonal_period"] = seasonal_period
    by_step = pd.DataFrame({"step": np.arange(1, H + 1)})
    for name, p in preds.items():
        by_step[f"{name}_mse_scaled"] = np.mean((p - y) ** 2, axis=0)
        by_step[f"{name}_mae_scaled"] = np.mean(np.abs(p - y), axis=0)
    return Scores(metrics=metrics, by_step=by_step, starts=starts, y=y, preds=preds)


def interval_scores(
    model: LSTMForecaster,
    extra: dict[str, Any],
    prepared: Prepared,
    test: Scores,
    seasonal_period: int,
    levels: tuple[float, ...],
) -> dict[str, Any]:
    """Interval coverage, width and pinball loss (scaled) on the test windows, per model.

    The LSTM uses the calibration stored with it (what it serves); each baseline gets the same
    split-conformal treatment from its own residuals on the same validation windows.
    """
    val = score(model, prepared, seasonal_period, part="val")
    out: dict[str, Any] = {}
    for name, p in test.preds.items():
        calibration = Calibration.from_extra(extra) if name == MODEL_KEY else Calibration(None)
        if calibration.empty:
            calibration = calibrate(val.y - val.preds[name], levels)
        by_level, loss = interval_metrics(test.y, p, calibration, levels)
        out[name] = {"intervals": by_level, "pinball_scaled": loss}
    return out


def series_row(metrics: dict[str, Any], series: str) -> pd.DataFrame:
    """``metrics/by_series.parquet`` of one series: one row, the panel file's columns that apply."""
    row: dict[str, Any] = {"series": [series], "n_windows": [metrics["n_windows"]]}
    for name in (MODEL_KEY, *BASELINES):
        values = metrics if name == MODEL_KEY else metrics["baselines"][name]
        for key in ("smape", "mase", "mse_scaled", "mae_scaled"):
            row[f"{name}_{key}"] = [float(values[key])]
    for level, band in (metrics.get("intervals") or {}).items():
        row[f"coverage_{level}"] = [float(band["coverage"])]
        row[f"width_scaled_{level}"] = [float(band["width_scaled"])]
    return pd.DataFrame(row)


def worst_windows(scores: Scores, k: int) -> list[int]:
    """The ``k`` test windows with the largest LSTM MAE (so MASE: one series, one scale), in time order."""
    mae = np.abs(scores.preds[MODEL_KEY] - scores.y).mean(axis=1)
    return sorted(int(i) for i in np.argsort(-mae, kind="stable")[:k])


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` to ``path`` atomically."""
    with atomic_file(path, "wb") as fh:
        frame.to_parquet(fh, index=False)


COLORS = {MODEL_KEY: "tab:blue", "repeat_last": "tab:grey", "seasonal_naive": "tab:orange"}
LABELS = {MODEL_KEY: "LSTM", "repeat_last": "repeat last", "seasonal_naive": "seasonal naive"}


def plot_forecasts(
    scores: Scores,
    prepared: Prepared,
    n: int,
    target: str,
    path: Path,
    picks: list[int] | None = None,
    title: str | None = None,
) -> list[int]:
    """A grid of ``n`` evenly spaced test windows (or the windows ``picks``): history, actual,
    LSTM and baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    L, H = prepared.input_size, prepared.horizon
    if picks is None:
        n = max(1, min(n, len(scores.starts)))
        picks = np.linspace(0, len(scores.starts) - 1, n).round().astype(int).tolist()
    n = len(picks)
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.4 * rows), dpi=110, squeeze=False)
    history = min(L, max(2 * H, 48))
    ts = prepared.timestamps
    for ax, i in zip(axes.flat, picks, strict=False):
        s = int(scores.starts[i])
        hist_t = ts[s + L - history : s + L]
        fut_t = ts[s + L : s + L + H]
        hist_y = prepared.scaler.inverse_target(np.asarray(prepared.series[s + L - history : s + L, 0]))
        ax.plot(hist_t, hist_y, color="black", lw=1, alpha=0.45, label="history")
        ax.plot(fut_t, prepared.scaler.inverse_target(scores.y[i]), color="black", lw=1.6, label="actual")
        for name in ("seasonal_naive", "repeat_last", MODEL_KEY):
            ax.plot(
                fut_t,
                prepared.scaler.inverse_target(scores.preds[name][i]),
                color=COLORS[name],
                lw=2 if name == MODEL_KEY else 1.2,
                ls="-" if name == MODEL_KEY else "--",
                label=LABELS[name],
            )
        ax.axvline(ts[s + L], color="grey", lw=0.8, ls=":")
        ax.set_title(f"forecast from {ts[s + L - 1]:%Y-%m-%d %H:%M}", fontsize=10)
        ax.set_ylabel(target)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    for ax in list(axes.flat)[len(picks) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, frameon=False)
    m = scores.metrics
    fig.suptitle(
        (title + ": " if title else "")
        + f"Test windows (H={H}): MSE scaled LSTM {m['mse_scaled']:.4f} | repeat last "
        f"{m['baselines']['repeat_last']['mse_scaled']:.4f} | seasonal naive "
        f"{m['baselines']['seasonal_naive']['mse_scaled']:.4f}",
        y=0.995,
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    write_png(fig, path)
    return picks


def plot_error_by_step(scores: Scores, path: Path) -> None:
    """Scaled MSE at each horizon step, the model against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = scores.by_step
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for name in (MODEL_KEY, *BASELINES):
        ax.plot(
            df["step"],
            df[f"{name}_mse_scaled"],
            color=COLORS[name],
            lw=2 if name == MODEL_KEY else 1.3,
            ls="-" if name == MODEL_KEY else "--",
            label=f"{LABELS[name]} (mean {df[f'{name}_mse_scaled'].mean():.4f})",
        )
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MSE (train-fit standard scale, unitless)")
    ax.set_title(f"Error by horizon step over {scores.metrics['n_windows']} test windows")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    write_png(fig, path)


def run_evaluate(
    data: DataConfig,
    evaluate: EvaluateConfig,
    forecast: ForecastConfig,
    paths: Paths,
    orchestration: OrchestrationConfig | None = None,
) -> EvaluateResult | Any:
    """Score ``models/model.pt`` on the test windows; write metrics, plot data and PNGs.

    A panel in data/prepared/ is scored per series (:mod:`tsforecast.evaluation.panel_evaluate`, per-series
    work on Dask at ``orchestration.dask_address``).
    """
    if is_panel_dir(paths.prepared):
        from tsforecast.evaluation.panel_evaluate import run_panel_evaluate

        return run_panel_evaluate(data, evaluate, forecast, orchestration or OrchestrationConfig(), paths)
    prepared = load_prepared(paths.prepared)  # edge: read
    model, extra = load_model(paths.models / "model.pt")
    scores = score(model, prepared, evaluate.seasonal_period)  # pure
    m = scores.metrics
    levels = forecast.levels or DEFAULT_LEVELS
    bands = interval_scores(model, extra, prepared, scores, evaluate.seasonal_period, levels)  # pure
    m["intervals"] = bands[MODEL_KEY]["intervals"]
    m["pinball_scaled"] = bands[MODEL_KEY]["pinball_scaled"]
    m["interval_method"] = Calibration.from_extra(extra).method
    for name in BASELINES:
        m["baselines"][name]["intervals"] = bands[name]["intervals"]
        m["baselines"][name]["pinball_scaled"] = bands[name]["pinball_scaled"]
    by_step = scores.by_step
    step_rows = [
        {
            "step": int(r.step),
            **{name: float(getattr(r, f"{name}_mse_scaled")) for name in (MODEL_KEY, *BASELINES)},
        }
        for r in by_step.itertuples()
    ]
    write_json(paths.metrics / "evaluate.json", m)  # edge: atomic writes
    write_json(paths.plots / "error_by_step.json", step_rows)
    first = int(scores.starts[0]) if len(scores.starts) else 0
    ts = prepared.timestamps[first + prepared.input_size : first + prepared.input_size + prepared.horizon]
    write_json(
        paths.plots / "forecast.json",
        [
            {
                "timestamp": str(t),
                "step": k + 1,
                "actual": float(prepared.scaler.inverse_target(scores.y[0][k])),
                "forecast": float(prepared.scaler.inverse_target(scores.preds[MODEL_KEY][0][k])),
                "seasonal_naive": float(prepared.scaler.inverse_target(scores.preds["seasonal_naive"][0][k])),
            }
            for k, t in enumerate(ts)
        ],
    )
    if evaluate.plot_windows > 0:
        plot_forecasts(
            scores,
            prepared,
            evaluate.plot_windows,
            value_label(data.path, data.target),  # the y axis: "demand (MW)"
            paths.plots / "forecast.png",
        )
    plot_error_by_step(scores, paths.plots / "error_by_step.png")
    write_parquet(paths.metrics / BY_SERIES_FILE, series_row(m, data.target))
    worst = worst_windows(scores, max(1, evaluate.plot_windows or 4))
    plot_forecasts(
        scores,
        prepared,
        len(worst),
        value_label(data.path, data.target),
        paths.plots / WORST_PLOT,
        picks=worst,
        title=f"the {len(worst)} worst by MASE",
    )
    beats = all(m["beats"].values())
    for lv, band in m["intervals"].items():
        log.info(
            "test %s %% intervals: coverage %.3f, width %.3f (scaled); pinball LSTM %.5f, repeat_last %.5f, "
            "seasonal_naive %.5f",
            lv,
            band["coverage"],
            band["width_scaled"],
            m["pinball_scaled"],
            m["baselines"]["repeat_last"]["pinball_scaled"],
            m["baselines"]["seasonal_naive"]["pinball_scaled"],
        )
    log.info(
        "test MSE (scaled): LSTM %.5f, repeat_last %.5f, seasonal_naive %.5f over %d windows%s",
        m["mse_scaled"],
        m["baselines"]["repeat_last"]["mse_scaled"],
        m["baselines"]["seasonal_naive"]["mse_scaled"],
        m["n_windows"],
        "" if beats else " - the LSTM does NOT beat every baseline",
    )
    return EvaluateResult(
        n_windows=m["n_windows"],
        mse_scaled=round(m["mse_scaled"], 6),
        repeat_last_mse_scaled=round(m["baselines"]["repeat_last"]["mse_scaled"], 6),
        seasonal_naive_mse_scaled=round(m["baselines"]["seasonal_naive"]["mse_scaled"], 6),
        beats_baselines=beats,
    )
