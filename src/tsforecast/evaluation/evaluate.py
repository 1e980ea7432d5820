"""Stage ``evaluate``: one global model scored on every test window of every series (S >= 1).

One series is a panel of one. Every stride-1 test window of every series is scored
(:mod:`tsforecast.evaluation.scoring`: chunks of series through ``parallel.map_series``, on Dask
at ``orchestration.dask_address`` when set). With split counts anchored at each series' end and
``split.test = window.horizon`` that is one window per series, the M4 protocol.

``metrics/evaluate.json`` (:func:`tsforecast.evaluation.metrics.evaluate_metrics`): ``mse_scaled``
and ``mae_scaled`` on each series' own train-fit scale, pooled over every window and step;
``mse``, ``mae``, ``rmse`` in the data's units, pooled; ``smape`` and ``mase`` as means over
series (MASE over the series whose in-sample scale is not 0) and ``owa``, M4's Overall Weighted
Average against Naive2; ``n_windows``, ``n_series``; ``intervals`` (coverage and width of the
LSTM's intervals at each ``forecast.levels``, from the calibration in its model card) and
``pinball_scaled``. Every baseline (``repeat_last`` = Naive1, ``seasonal_naive``, ``naive2``)
carries the same keys, its intervals calibrated split-conformally on its own residuals over the
val windows. ``metrics/by_series.parquet`` holds one row per series (its id column first: the
data's id column, or ``series`` for one series).

Plots: ``forecast.png``, a spread of test windows over the panel; ``worst_series.png``, the
test windows with the highest LSTM MASE (MASE, not sMAPE: it compares each series with its own
in-sample seasonal-naive error, so it is comparable across series and does not explode near zero
as sMAPE does); ``error_by_step.png``/``.json``, scaled MSE per horizon step averaged over series;
``forecast.json``, the first test window of the first series.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, EvaluateConfig, ForecastConfig, OrchestrationConfig
from tsforecast.dataset.auto import panel_period
from tsforecast.dataset.long import SERIES_ID, without_series_id
from tsforecast.dataset.panel import Panel, load_panel
from tsforecast.evaluation.baselines import check_period
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, Calibration, calibrate
from tsforecast.evaluation.metrics import (
    error_by_step,
    evaluate_metrics,
    series_table,
    worst_series,
    worst_windows,
)
from tsforecast.evaluation.names import (
    BASELINES,
    ERROR_BY_STEP_JSON,
    ERROR_BY_STEP_PNG,
    EVALUATE_JSON,
    FORECAST_JSON,
    FORECAST_PNG,
    MODEL_KEY,
)
from tsforecast.evaluation.plots import plot_error_by_step, plot_windows
from tsforecast.evaluation.scoring import ChunkScores, Job, check_model, score_panel
from tsforecast.evaluation.units import value_label
from tsforecast.evaluation.views import WindowView, forecast_rows, window_views
from tsforecast.io import atomic_file, write_json
from tsforecast.paths import BY_SERIES_FILE, WORST_PLOT, Paths
from tsforecast.training.card import ModelCard
from tsforecast.training.model import LSTMForecaster, load_model

log = logging.getLogger(__name__)

RESIDUAL_CAP = 16384  # val windows whose residuals calibrate the baselines' intervals (every k-th beyond)


@dataclass(frozen=True)
class EvaluateResult:
    n_series: int
    n_windows: int
    mse_scaled: float
    repeat_last_mse_scaled: float
    seasonal_naive_mse_scaled: float
    smape: float
    mase: float
    owa: float
    seasonal_naive_owa: float
    beats_baselines: bool


def calibrations(
    model: LSTMForecaster,
    calibration: Calibration,
    panel: Panel,
    period: int,
    levels: tuple[float, ...],
    address: str | None = None,
    in_process: bool | None = None,
) -> dict[str, Calibration]:
    """Each forecaster's interval calibration: the LSTM's ``calibration`` (what it serves), each
    baseline's split conformal on its own val residuals (the LSTM's too when ``calibration`` is empty)."""
    if not levels:
        return {}
    need = (*BASELINES, MODEL_KEY) if calibration.empty else BASELINES
    if calibration.empty:
        log.warning("the model card holds no interval calibration: calibrating on the val windows")
    every = max(1, -(-panel.windows("val").total // RESIDUAL_CAP))
    kw: dict[str, Any] = {"part": "val", "residuals": need, "residual_every": every}
    job = Job.for_model(model, period, **kw) if MODEL_KEY in need else Job.baselines_only(period, **kw)
    val = score_panel(job, panel, address, in_process=in_process, desc="val")
    out = {} if calibration.empty else {MODEL_KEY: calibration}
    for name in need:
        if len(val.residuals[name]) >= 2:
            out[name] = calibrate(val.residuals[name], levels)
        else:
            log.warning("%s: fewer than 2 val windows, so no intervals to score", name)
    return out


def evaluate_model(
    model: LSTMForecaster,
    panel: Panel,
    period: int,
    levels: tuple[float, ...] = DEFAULT_LEVELS,
    calibration: Calibration | None = None,
    address: str | None = None,
    *,
    in_process: bool | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, ChunkScores]:
    """Score ``model`` on every test window of ``panel``: (evaluate.json metrics, by-series table, sums).

    ``calibration``: the LSTM's interval calibration (its model card's); None or empty: one from
    the val windows. ``levels=()``: no intervals.
    """
    check_model(model, panel)
    check_period(period, panel.input_size)
    calibration = calibration or Calibration(quantiles=None)
    cals = calibrations(model, calibration, panel, period, levels, address, in_process)
    job = Job.for_model(model, period, levels=levels, calibrations=cals)
    scores = score_panel(job, panel, address, in_process=in_process, desc="evaluate")
    table = series_table(scores, panel.horizon, levels)
    metrics = evaluate_metrics(scores, table, panel.n_series, panel.input_size, period, levels)
    metrics["interval_method"] = calibration.method
    table.insert(0, str(panel.ids.name or SERIES_ID), panel.ids.to_numpy())
    return metrics, table, scores


def spread(n: int, k: int) -> list[int]:
    """``k`` (at least 1, at most ``n``) evenly spaced positions of ``n``, the first and the last included."""
    k = max(1, min(k, n))
    return sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))


def render_plots(
    model: LSTMForecaster,
    calibration: Calibration,
    panel: Panel,
    scores: ChunkScores,
    metrics: dict[str, Any],
    steps: list[dict[str, float]],
    evaluate: EvaluateConfig,
    ylabel: str,
    level: float | None,
) -> tuple[dict[str, bytes], WindowView]:
    """The stage's PNGs, in memory: the worst test windows, error by step, and (``evaluate.plot_windows``
    > 0) a spread of test windows, the LSTM's band at ``level``; and the first test window's view
    (``plots/forecast.json``). Every window is forecast in one batch."""
    index = panel.window_index("test")  # (K, 2) series-major, as the scores' windows
    n, S = len(index), panel.n_series
    k = max(1, min(evaluate.plot_windows or 4, n))
    worst = worst_windows(scores.window_mae, index[:, 0], scores.mase_scale, k)
    picks = spread(n, k) if evaluate.plot_windows > 0 else []
    wanted = [(int(index[j, 0]), int(index[j, 1])) for j in [0, *worst, *picks]]
    first, *views = window_views(model, panel, wanted, int(metrics["seasonal_period"]), calibration, level)
    title = f"The {len(worst)} test windows (of {n}, {S} series) with the highest LSTM MASE; OWA {metrics['owa']:.3f}"
    pngs = {
        WORST_PLOT: plot_windows(views[: len(worst)], ylabel, title),
        ERROR_BY_STEP_PNG: plot_error_by_step(steps, S, n),
    }
    if picks:
        sn = metrics["baselines"]["seasonal_naive"]
        title = (
            f"{len(picks)} of {n} test windows ({S} series, H={panel.horizon}): mse_scaled LSTM "
            f"{metrics['mse_scaled']:.4f}, seasonal naive {sn['mse_scaled']:.4f}; OWA LSTM {metrics['owa']:.3f}, "
            f"seasonal naive {sn['owa']:.3f}"
        )
        pngs[FORECAST_PNG] = plot_windows(views[len(worst) :], ylabel, title)
    return pngs, first


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def read_model(paths: Paths, panel: Panel) -> tuple[LSTMForecaster, ModelCard]:
    """``models/model.pt`` and its model card, checked against the panel in data/prepared/."""
    path = paths.models / "model.pt"
    model, extra = load_model(path)
    card = ModelCard.from_extra(extra, where=str(path))
    check_model(model, panel)
    card.check(
        id_column=panel.id_column,
        columns=panel.columns,
        horizon=panel.horizon,
        input_size=panel.input_size,
        where=str(path),
    )
    return model, card


def _log(metrics: dict[str, Any]) -> None:
    sn = metrics["baselines"]["seasonal_naive"]
    log.info(
        "test over %d series (%d windows): mse_scaled LSTM %.5f, repeat_last %.5f, seasonal_naive %.5f; "
        "sMAPE %.3f, MASE %.3f, OWA %.3f vs Naive2 (seasonal naive OWA %.3f); %s %% intervals: coverage %s; "
        "worst by MASE: %s%s",
        metrics["n_series"],
        metrics["n_windows"],
        metrics["mse_scaled"],
        metrics["baselines"]["repeat_last"]["mse_scaled"],
        sn["mse_scaled"],
        metrics["smape"],
        metrics["mase"],
        metrics["owa"],
        sn["owa"],
        "/".join(metrics["intervals"]),
        "/".join(f"{b['coverage']:.3f}" for b in metrics["intervals"].values()),
        ", ".join(metrics["worst_series"]),
        "" if all(metrics["beats"].values()) else " - the LSTM does NOT beat every baseline",
    )


def run_evaluate(
    data: DataConfig,
    evaluate: EvaluateConfig,
    forecast: ForecastConfig,
    paths: Paths,
    orchestration: OrchestrationConfig | None = None,
) -> EvaluateResult:
    """Score ``models/model.pt`` on every series' test windows; write metrics, by-series table, plots.

    Everything is computed (PNGs rendered to memory) before the first file is written, and each
    file is replaced atomically, so a failure leaves the previous outputs as they were.
    """
    panel = load_panel(paths.prepared)  # edge: read
    model, card = read_model(paths, panel)
    levels = tuple(forecast.levels) if forecast.levels else DEFAULT_LEVELS
    choice = panel_period(evaluate.seasonal_period, panel)  # auto: from the frequency and the train rows
    log.info("seasonal period %d: %s", choice.value, choice.why)
    period, calibration = choice.value, card.calibration
    address = (orchestration or OrchestrationConfig()).dask_address
    metrics, table, scores = evaluate_model(model, panel, period, levels, calibration, address)
    metrics["worst_series"] = [
        str(panel.ids[i]) for i in worst_series(table, min(panel.n_series, evaluate.plot_windows or 4))
    ]
    steps = error_by_step(scores)
    level = levels[0] if levels else None
    ylabel = value_label(data.path, data.target)
    pngs, first = render_plots(model, calibration, panel, scores, metrics, steps, evaluate, ylabel, level)
    rows = without_series_id(pd.DataFrame(forecast_rows(first, SERIES_ID)), data)  # one series: no id key
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    # edge: every output is ready; replace them one by one, atomically, evaluate.json last
    _write_bytes(paths.metrics / BY_SERIES_FILE, buf.getvalue())
    for name, png in pngs.items():
        _write_bytes(paths.plots / name, png)
    write_json(paths.plots / ERROR_BY_STEP_JSON, steps)
    write_json(paths.plots / FORECAST_JSON, rows.to_dict("records"))
    write_json(paths.metrics / EVALUATE_JSON, metrics)
    _log(metrics)
    sn = metrics["baselines"]["seasonal_naive"]
    return EvaluateResult(
        n_series=metrics["n_series"],
        n_windows=metrics["n_windows"],
        mse_scaled=round(metrics["mse_scaled"], 6),
        repeat_last_mse_scaled=round(metrics["baselines"]["repeat_last"]["mse_scaled"], 6),
        seasonal_naive_mse_scaled=round(sn["mse_scaled"], 6),
        smape=round(metrics["smape"], 4),
        mase=round(metrics["mase"], 4),
        owa=round(metrics["owa"], 4),
        seasonal_naive_owa=round(sn["owa"], 4),
        beats_baselines=all(metrics["beats"].values()),
    )


__all__ = [
    "EvaluateResult",
    "calibrations",
    "evaluate_model",
    "read_model",
    "render_plots",
    "run_evaluate",
    "spread",
]
