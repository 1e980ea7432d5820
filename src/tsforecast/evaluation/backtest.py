"""Stage ``backtest``: rolling-origin evaluation over the test period.

The trained model (``models/model.pt``, not refitted) forecasts H steps from each of
``backtest.n_cutoffs`` origins spread evenly over the test period, and so do the two
baselines of :mod:`tsforecast.evaluation.evaluate`; each origin is scored with evaluate's own
functions (:func:`~tsforecast.evaluation.evaluate.all_metrics`, ``repeat_last``, ``seasonal_naive``).

An origin (``cutoff``, as in statsforecast's ``cross_validation``) is the last observed
step: the forecast covers the H rows after it, and reads the L rows up to it. Origins are
drawn from the stride-1 test windows that evaluate scores, so every origin has H actual
values after it inside the test rows: the first origin is the earliest one whose forecast
covers the first H test rows, the last one's forecast ends on the last test row. With
``n_cutoffs`` equal to the number of test windows the backtest's pooled metrics are
evaluate's.

No refit: the weights and the train-fit scaler stay fixed for every origin (Darts'
``historical_forecasts(retrain=False)``). A refit would retrain with train's recipe on the
rows before each origin: ``n_cutoffs`` times the cost of the train stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsforecast.config import BacktestConfig, EvaluateConfig, OrchestrationConfig
from tsforecast.dataset.panel import is_panel_dir
from tsforecast.dataset.window import Prepared, load_prepared, sliding_windows, window_starts
from tsforecast.errors import DataError
from tsforecast.evaluation.evaluate import (
    BASELINES,
    COLORS,
    LABELS,
    MODEL_KEY,
    all_metrics,
    mase_scale,
    repeat_last,
    seasonal_naive,
)
from tsforecast.io import atomic_file, write_json, write_png
from tsforecast.paths import Paths
from tsforecast.training.inference import WindowBatches, predict_scaled
from tsforecast.training.model import LSTMForecaster, load_model

log = logging.getLogger(__name__)

BACKTEST_JSON = "backtest.json"
BACKTEST_PARQUET = "backtest.parquet"


@dataclass(frozen=True)
class BacktestResult:
    n_cutoffs: int
    first_cutoff: str
    last_cutoff: str
    refit: bool
    mse_scaled: float
    repeat_last_mse_scaled: float
    seasonal_naive_mse_scaled: float


def cutoff_rows(prepared: Prepared, n_cutoffs: int) -> np.ndarray:
    """Rows of the ``n_cutoffs`` origins (last observed step), evenly spread over the test windows.

    The candidates are the stride-1 test windows' origins (``start + L - 1``); ``n_cutoffs``
    of them are picked at evenly spaced positions, always including the first and (for two
    or more) the last. Fails naming the value when the test period has fewer windows.
    """
    L, H = prepared.input_size, prepared.horizon
    starts = window_starts(prepared.bounds, "test", L, H, 1)
    if n_cutoffs < 1 or n_cutoffs > len(starts):
        test_rows = prepared.bounds.test[1] - prepared.bounds.test[0]
        raise DataError(
            f"backtest.n_cutoffs={n_cutoffs} but the test period ({test_rows} rows, horizon {H}) "
            f"has {len(starts)} forecast origins with {H} actual values after them; "
            f"use 1 <= n_cutoffs <= {len(starts)} or a larger split.test"
        )
    picks = np.linspace(0, len(starts) - 1, n_cutoffs).round().astype(np.int64)  # distinct: step >= 1
    return starts[picks] + L - 1


def _check_model(model: LSTMForecaster, prepared: Prepared) -> None:
    expected = (prepared.input_size, prepared.horizon, len(prepared.columns))
    got = (model.args.input_size, model.args.horizon, model.args.n_features)
    if got != expected:
        raise DataError(
            f"model expects (input_size, horizon, features)={got} but the data gives {expected}; "
            "retrain or re-window (`dvc repro`)"
        )


def forecasts_at(
    model: LSTMForecaster, prepared: Prepared, origins: np.ndarray, seasonal_period: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scaled actuals (n, H) and forecasts {name: (n, H)} of the model and baselines from each origin."""
    _check_model(model, prepared)
    L, H = prepared.input_size, prepared.horizon
    starts = np.asarray(origins, dtype=np.int64) - L + 1  # window start rows
    series = torch.from_numpy(np.ascontiguousarray(prepared.series, dtype=np.float32))
    batches = WindowBatches(series, torch.from_numpy(starts), L, H)
    p_model, y = predict_scaled(model, batches, torch.device("cpu"))  # (n, H) each
    x_target = np.asarray(sliding_windows(prepared.series, L, H)[0][starts, :, 0], dtype="float32")  # (n, L)
    preds = {
        MODEL_KEY: p_model,
        "repeat_last": repeat_last(x_target, H),
        "seasonal_naive": seasonal_naive(x_target, H, seasonal_period),
    }
    return y, preds


def _metrics(y: np.ndarray, p: np.ndarray, prepared: Prepared, denom: float) -> dict[str, Any]:
    out = all_metrics(y, p, prepared, denom)
    out.pop("n_windows")  # one forecast per origin; the count is n_cutoffs
    return out


def backtest_metrics(
    y: np.ndarray,
    preds: dict[str, np.ndarray],
    prepared: Prepared,
    origins: np.ndarray,
    seasonal_period: int,
) -> dict[str, Any]:
    """The ``metrics/backtest.json`` contract: pooled metrics, baselines, and one entry per origin."""
    train_target = prepared.scaler.inverse_target(
        np.asarray(prepared.series[slice(*prepared.bounds.train), 0], dtype="float64")
    )
    denom = mase_scale(train_target, seasonal_period)
    by_cutoff = []
    for i, row in enumerate(origins):
        one = {name: _metrics(y[i : i + 1], p[i : i + 1], prepared, denom) for name, p in preds.items()}
        by_cutoff.append(
            {
                "cutoff": prepared.timestamps[int(row)].isoformat(),
                **one[MODEL_KEY],
                "baselines": {name: one[name] for name in BASELINES},
            }
        )
    pooled = {name: _metrics(y, p, prepared, denom) for name, p in preds.items()}
    return {
        "n_cutoffs": len(origins),
        **pooled[MODEL_KEY],
        "baselines": {name: pooled[name] for name in BASELINES},
        "beats": {name: pooled[MODEL_KEY]["mse_scaled"] < pooled[name]["mse_scaled"] for name in BASELINES},
        "refit": False,
        "horizon": prepared.horizon,
        "input_size": prepared.input_size,
        "seasonal_period": seasonal_period,
        "by_cutoff": by_cutoff,
    }


def forecast_rows(
    y: np.ndarray, preds: dict[str, np.ndarray], prepared: Prepared, origins: np.ndarray
) -> pd.DataFrame:
    """One row per origin and step in data units: cutoff, timestamp, step, actual, lstm, baselines."""
    H = prepared.horizon
    rows = (np.asarray(origins)[:, None] + np.arange(1, H + 1)[None, :]).ravel()  # (n*H,) target rows
    frame = pd.DataFrame(
        {
            "cutoff": prepared.timestamps[np.repeat(np.asarray(origins), H)],
            "timestamp": prepared.timestamps[rows],
            "step": np.tile(np.arange(1, H + 1), len(origins)),
            "actual": prepared.scaler.inverse_target(y.astype("float64")).ravel(),
        }
    )
    for name, p in preds.items():
        frame[name] = prepared.scaler.inverse_target(p.astype("float64")).ravel()
    return frame


def plot_backtest(metrics: dict[str, Any], path: Path) -> None:
    """Scaled MSE of the forecast from each origin: the model against the baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    cuts = pd.to_datetime([c["cutoff"] for c in metrics["by_cutoff"]])
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for name in (MODEL_KEY, *BASELINES):
        values = [c["mse_scaled"] if name == MODEL_KEY else c["baselines"][name]["mse_scaled"]
                  for c in metrics["by_cutoff"]]  # fmt: skip
        pooled = metrics["mse_scaled"] if name == MODEL_KEY else metrics["baselines"][name]["mse_scaled"]
        ax.plot(
            cuts,
            values,
            color=COLORS[name],
            marker="o",
            lw=2 if name == MODEL_KEY else 1.3,
            ls="-" if name == MODEL_KEY else "--",
            label=f"{LABELS[name]} (pooled {pooled:.4f})",
        )
    ax.set_xlabel("forecast origin (last observed step)")
    ax.set_ylabel("MSE (train-fit standard scale)")
    ax.set_title(f"Error by origin: {metrics['n_cutoffs']} origins, H={metrics['horizon']}, no refit")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.legend()
    fig.tight_layout()
    write_png(fig, path)


def run_backtest(
    evaluate: EvaluateConfig,
    backtest: BacktestConfig,
    paths: Paths,
    orchestration: OrchestrationConfig | None = None,
) -> BacktestResult | Any:
    """Forecast from ``backtest.n_cutoffs`` test origins with the trained model; score each.

    A panel in data/prepared/ is backtested per series (:mod:`tsforecast.evaluation.panel_backtest`).
    """
    if is_panel_dir(paths.prepared):
        from tsforecast.evaluation.panel_backtest import run_panel_backtest

        return run_panel_backtest(evaluate, backtest, orchestration or OrchestrationConfig(), paths)
    prepared = load_prepared(paths.prepared)  # edge: read
    model, _ = load_model(paths.models / "model.pt")
    origins = cutoff_rows(prepared, backtest.n_cutoffs)  # pure
    y, preds = forecasts_at(model, prepared, origins, evaluate.seasonal_period)
    m = backtest_metrics(y, preds, prepared, origins, evaluate.seasonal_period)
    frame = forecast_rows(y, preds, prepared, origins)
    write_json(paths.metrics / BACKTEST_JSON, m)  # edge: atomic writes
    with atomic_file(paths.metrics / BACKTEST_PARQUET, "wb") as fh:
        frame.to_parquet(fh, index=False)
    write_json(
        paths.plots / BACKTEST_JSON,
        [
            {
                "origin": k + 1,
                "cutoff": c["cutoff"],
                MODEL_KEY: c["mse_scaled"],
                **{name: c["baselines"][name]["mse_scaled"] for name in BASELINES},
            }
            for k, c in enumerate(m["by_cutoff"])
        ],
    )
    plot_backtest(m, paths.plots / "backtest.png")
    log.info(
        "backtest over %d origins (%s .. %s, no refit): MSE (scaled) LSTM %.5f, repeat_last %.5f, "
        "seasonal_naive %.5f",
        m["n_cutoffs"],
        m["by_cutoff"][0]["cutoff"],
        m["by_cutoff"][-1]["cutoff"],
        m["mse_scaled"],
        m["baselines"]["repeat_last"]["mse_scaled"],
        m["baselines"]["seasonal_naive"]["mse_scaled"],
    )
    return BacktestResult(
        n_cutoffs=m["n_cutoffs"],
        first_cutoff=m["by_cutoff"][0]["cutoff"],
        last_cutoff=m["by_cutoff"][-1]["cutoff"],
        refit=False,
        mse_scaled=round(m["mse_scaled"], 6),
        repeat_last_mse_scaled=round(m["baselines"]["repeat_last"]["mse_scaled"], 6),
        seasonal_naive_mse_scaled=round(m["baselines"]["seasonal_naive"]["mse_scaled"], 6),
    )


__all__ = [
    "BacktestResult",
    "backtest_metrics",
    "cutoff_rows",
    "forecast_rows",
    "forecasts_at",
    "plot_backtest",
    "run_backtest",
]
