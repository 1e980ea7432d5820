"""Stage ``evaluate`` for a panel: one global model scored per series and over the panel.

Every test window of every series is scored (:mod:`tsforecast.evaluation.scoring`, chunks of
series through ``parallel.map_series``, on Dask at ``orchestration.dask_address`` when set).
With split counts anchored at each series' end and ``split.test = window.horizon`` that is one
window per series, the M4 protocol.

``metrics/evaluate.json`` keeps the one-series contract (``mse_scaled``, ``mae_scaled`` on each
series' own train-fit scale, pooled over every window and step; ``mse``, ``mae``, ``rmse`` in
the data's units, pooled; ``n_windows``; ``baselines``; ``intervals``) and adds the M4 measures:
``smape`` and ``mase`` are means over series (MASE over the series whose in-sample scale is not
0), ``owa`` is M4's Overall Weighted Average against Naive2, and every baseline (``repeat_last``
= Naive1, ``seasonal_naive``, ``naive2``) carries the same keys. ``metrics/by_series.parquet``
holds one row per series. ``plots/worst_series.png`` shows the series with the highest MASE:
MASE, not sMAPE, because it compares each series with its own in-sample seasonal-naive error,
so it is comparable across series and does not explode near zero as sMAPE does.
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
from tsforecast.dataset.panel import Panel, load_panel
from tsforecast.evaluation import m4
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, Calibration, calibrate, level_name
from tsforecast.evaluation.plots import SeriesView, plot_error_by_step, plot_series
from tsforecast.evaluation.scoring import (
    BASELINES,
    FORECASTERS,
    MODEL_KEY,
    PREDICT_BATCH,
    ChunkScores,
    Job,
    baseline_forecasts,
    check_model,
    naive2_parts,
    panel_slice,
    score_panel,
)
from tsforecast.evaluation.units import value_label
from tsforecast.io import atomic_file, write_json
from tsforecast.paths import BY_SERIES_FILE, WORST_PLOT, Paths
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster, load_model

log = logging.getLogger(__name__)

WORST_BY = "mase"


@dataclass(frozen=True)
class PanelEvaluateResult:
    n_series: int
    n_windows: int
    mse_scaled: float
    smape: float
    mase: float
    owa: float
    seasonal_naive_owa: float
    beats_baselines: bool


# ---------------------------------------------------------------------------- pure: tables and metrics


def series_table(
    scores: ChunkScores, horizon: int, levels: tuple[float, ...], n_origins: int = 1
) -> pd.DataFrame:
    """One row per group (a series; with ``n_origins`` > 1 a series and origin, series-major).

    Columns ``<forecaster>_{smape,mase,mse_scaled,mae_scaled}``, ``lstm_owa`` (the series' own
    relative errors against Naive2), ``coverage_<l>``/``width_scaled_<l>``, ``n_windows``,
    ``mase_scale`` and ``seasonal`` (Naive2 treated the series as seasonal).
    """
    n = scores.n_windows.astype(np.float64)
    steps = n * horizon
    scale = np.repeat(scores.mase_scale, n_origins)
    table: dict[str, Any] = {"n_windows": scores.n_windows}
    with np.errstate(invalid="ignore", divide="ignore"):
        for f in FORECASTERS:
            table[f"{f}_smape"] = scores.sums[f"{f}.smape"] / n
            table[f"{f}_mase"] = (scores.sums[f"{f}.sae"] / steps) / scale
            table[f"{f}_mse_scaled"] = scores.sums[f"{f}.sse_scaled"] / steps
            table[f"{f}_mae_scaled"] = scores.sums[f"{f}.sae_scaled"] / steps
        table[f"{MODEL_KEY}_owa"] = 0.5 * (
            table[f"{MODEL_KEY}_smape"] / table["naive2_smape"]
            + table[f"{MODEL_KEY}_mase"] / table["naive2_mase"]
        )
        for i, level in enumerate(levels):
            table[f"coverage_{level_name(level)}"] = scores.covered[:, i] / steps
            table[f"width_scaled_{level_name(level)}"] = scores.width[:, i] / steps
    table["mase_scale"] = scale
    table["seasonal"] = np.repeat(scores.seasonal, n_origins)
    return pd.DataFrame(table)


def m4_summary(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """sMAPE (mean over series), MASE (mean over series with a defined scale) and OWA vs Naive2."""
    scale = table["mase_scale"].to_numpy()
    scored = np.isfinite(scale) & (scale > 0)
    means = {
        f: (
            float(table[f"{f}_smape"].mean()),
            float(table[f"{f}_mase"].to_numpy()[scored].mean()) if scored.any() else float("nan"),
        )
        for f in FORECASTERS
    }
    ref = means["naive2"]
    return {f: {"smape": s, "mase": m, "owa": m4.owa(s, m, *ref)} for f, (s, m) in means.items()}


def pooled(
    scores: ChunkScores, horizon: int, rows: np.ndarray | slice = slice(None)
) -> dict[str, dict[str, float]]:
    """Scaled and data-unit MSE/MAE/RMSE of every forecaster over every window and step of ``rows``."""
    elements = float(scores.n_windows[rows].sum()) * horizon
    out = {}
    for f in FORECASTERS:
        total = {
            stat: float(scores.sums[f"{f}.{stat}"][rows].sum())
            for stat in ("sse_scaled", "sae_scaled", "sse", "sae")
        }
        mse = total["sse"] / elements
        out[f] = {
            "mse_scaled": total["sse_scaled"] / elements,
            "mae_scaled": total["sae_scaled"] / elements,
            "mse": mse,
            "mae": total["sae"] / elements,
            "rmse": float(np.sqrt(mse)),
        }
    return out


def panel_metrics(
    scores: ChunkScores, table: pd.DataFrame, panel: Panel, period: int, levels: tuple[float, ...]
) -> dict[str, Any]:
    """The ``metrics/evaluate.json`` of a panel (see the module doc)."""
    H = panel.horizon
    flat = pooled(scores, H)
    m4s = m4_summary(table)
    scored = {f: {**flat[f], **m4s[f]} for f in FORECASTERS}
    elements = float(scores.n_windows.sum()) * H
    metrics: dict[str, Any] = {
        **scored[MODEL_KEY],
        "n_windows": int(scores.n_windows.sum()),
        "n_series": panel.n_series,
        "n_series_mase": int((np.isfinite(table["mase_scale"]) & (table["mase_scale"] > 0)).sum()),
        "n_seasonal": int(table["seasonal"].sum()),
        "baselines": {b: scored[b] for b in BASELINES},
        "beats": {b: bool(scored[MODEL_KEY]["mse_scaled"] < scored[b]["mse_scaled"]) for b in BASELINES},
        "beats_owa": {b: bool(scored[MODEL_KEY]["owa"] < scored[b]["owa"]) for b in BASELINES},
        "intervals": {
            level_name(lv): {
                "coverage": float(scores.covered[:, i].sum() / elements),
                "width_scaled": float(scores.width[:, i].sum() / elements),
            }
            for i, lv in enumerate(levels)
        },
        "horizon": H,
        "input_size": panel.input_size,
        "seasonal_period": period,
        "worst_series_by": WORST_BY,
    }
    return metrics


def error_by_step(scores: ChunkScores) -> list[dict[str, float]]:
    """Scaled MSE at each horizon step, averaged over series (each series' mean over its windows)."""
    n = np.maximum(scores.n_windows, 1)[:, None]
    per = {f: (scores.step_sse[f] / n).mean(axis=0) for f in FORECASTERS}
    H = len(per[MODEL_KEY])
    return [{"step": k + 1, **{f: float(per[f][k]) for f in FORECASTERS}} for k in range(H)]


def worst_series(table: pd.DataFrame, k: int) -> list[int]:
    """Positions of the ``k`` series with the highest LSTM MASE (sMAPE where no MASE is defined)."""
    key = table[f"{MODEL_KEY}_{WORST_BY}"].replace([np.inf, -np.inf], np.nan)
    if key.isna().all():
        key = table[f"{MODEL_KEY}_smape"]
    return [int(i) for i in np.argsort(-key.fillna(-np.inf).to_numpy(), kind="stable")[:k]]


# ---------------------------------------------------------------------------- one series' last window


def series_view(
    net: LSTMForecaster, panel: Panel, i: int, period: int, calibration: Calibration, level: float | None
) -> SeriesView:
    """Forecast series ``i``'s last test window with the LSTM and the baselines (in-process)."""
    one = panel_slice(panel, i, i + 1)
    wr = one.windows("test")
    s = np.zeros(1, dtype=np.int64)
    start = wr.starts(s, wr.count - 1)
    x, y = one.gather(s, start, scaled=True)
    p = predict_windows(net, x, PREDICT_BATCH)
    m = period
    si = naive2_parts(one.histories(before="test"), m)[1] if m > 1 else np.ones((1, 1))
    L, H = one.input_size, one.horizon
    origin = start + L - 1
    forecasts = {MODEL_KEY: one.inverse_target(s, p)[0]}
    forecasts.update({k: v[0] for k, v in baseline_forecasts(one, s, origin, si, m).items()})
    ts = one.timestamps(0)
    o = int(origin[0])
    tail = min(o + 1, max(L, 3 * H))
    band = None
    if level is not None and not calibration.empty:
        lo, hi = calibration.bounds(p, level)
        band = (one.inverse_target(s, lo)[0], one.inverse_target(s, hi)[0])
    target = one.series(0)[:, 0].astype(np.float64)
    return SeriesView(
        sid=panel.ids[i],
        history_t=ts[o + 1 - tail : o + 1],
        history=target[o + 1 - tail : o + 1],
        future_t=ts[o + 1 : o + 1 + H],
        actual=one.inverse_target(s, y.astype(np.float64))[0],
        forecasts=forecasts,
        band=band,
    )


def forecast_rows(view: SeriesView) -> list[dict[str, Any]]:
    """``plots/forecast.json``: one series' last test window, as the one-series file (plus the id)."""
    return [
        {
            "timestamp": str(t),
            "step": k + 1,
            "series": str(view.sid),
            "actual": float(view.actual[k]),
            "forecast": float(view.forecasts[MODEL_KEY][k]),
            "seasonal_naive": float(view.forecasts["seasonal_naive"][k]),
            "naive2": float(view.forecasts["naive2"][k]),
        }
        for k, t in enumerate(view.future_t)
    ]


# ---------------------------------------------------------------------------- the stage


def model_job(
    model: LSTMForecaster,
    extra: dict[str, Any],
    panel: Panel,
    period: int,
    levels: tuple[float, ...],
    address: str | None,
    in_process: bool | None = None,
) -> Job:
    """The scoring job: the model, its interval calibration (or one from the val windows if none)."""
    calibration = Calibration.from_extra(extra)
    if calibration.empty and levels:
        log.warning("the model file holds no interval calibration: calibrating on the val windows")
        job = Job.for_model(model, period, part="val", residuals=True)
        val = score_panel(job, panel, address, in_process=in_process, desc="val")
        calibration = calibrate(val.residuals, levels) if val.residuals is not None else calibration
    return Job.for_model(
        model, period, levels=levels, quantiles=calibration.quantiles, calibration_n=calibration.n
    )


def evaluate_panel(
    model: LSTMForecaster,
    extra: dict[str, Any],
    panel: Panel,
    period: int,
    levels: tuple[float, ...] = DEFAULT_LEVELS,
    address: str | None = None,
    *,
    in_process: bool | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, ChunkScores]:
    """Score ``model`` on every test window of ``panel``: (evaluate.json metrics, by-series table, sums)."""
    check_model(model, panel)
    job = model_job(model, extra, panel, period, levels, address, in_process)
    scores = score_panel(job, panel, address, in_process=in_process, desc="evaluate")
    table = series_table(scores, panel.horizon, levels)
    metrics = panel_metrics(scores, table, panel, period, levels)
    metrics["interval_method"] = Calibration.from_extra(extra).method
    table.insert(0, str(panel.ids.name or "id"), panel.ids.to_numpy())
    return metrics, table, scores


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def render_plots(
    model: LSTMForecaster,
    extra: dict[str, Any],
    panel: Panel,
    table: pd.DataFrame,
    metrics: dict[str, Any],
    steps: list[dict[str, float]],
    evaluate: EvaluateConfig,
    ylabel: str,
    level: float | None,
) -> dict[str, bytes]:
    """The stage's PNGs, in memory: worst series (sets ``metrics["worst_series"]``), error by step,
    and (``evaluate.plot_windows`` > 0) a spread of series; the LSTM's band at ``level``."""
    period, calibration = evaluate.seasonal_period, Calibration.from_extra(extra)

    def views(picks: list[int]) -> list[SeriesView]:
        return [series_view(model, panel, i, period, calibration, level) for i in picks]

    k = max(1, min(evaluate.plot_windows or 4, panel.n_series))
    worst = worst_series(table, k)
    metrics["worst_series"] = [str(panel.ids[i]) for i in worst]
    title = f"The {k} series with the highest LSTM MASE (of {panel.n_series}); panel OWA {metrics['owa']:.3f}"
    pngs = {
        WORST_PLOT: plot_series(views(worst), table, worst, ylabel, title),
        "error_by_step.png": plot_error_by_step(steps, panel.n_series),
    }
    if evaluate.plot_windows > 0:
        picks = sorted(set(np.linspace(0, panel.n_series - 1, k).round().astype(int).tolist()))
        title = (
            f"Last test window of {len(picks)} of {panel.n_series} series (H={panel.horizon}): OWA LSTM "
            f"{metrics['owa']:.3f}, seasonal naive {metrics['baselines']['seasonal_naive']['owa']:.3f}"
        )
        pngs["forecast.png"] = plot_series(views(picks), table, picks, ylabel, title)
    return pngs


def run_panel_evaluate(
    data: DataConfig,
    evaluate: EvaluateConfig,
    forecast: ForecastConfig,
    orchestration: OrchestrationConfig,
    paths: Paths,
) -> PanelEvaluateResult:
    """Score ``models/model.pt`` on every series' test windows; write metrics, by-series table, plots.

    Everything is computed (PNGs rendered to memory) before the first file is written, and each
    file is replaced atomically, so a failure leaves the previous outputs as they were.
    """
    panel = load_panel(paths.prepared)  # edge: read
    model, extra = load_model(paths.models / "model.pt")
    levels = tuple(forecast.levels) if forecast.levels else DEFAULT_LEVELS
    period = evaluate.seasonal_period
    metrics, table, scores = evaluate_panel(model, extra, panel, period, levels, orchestration.dask_address)
    steps = error_by_step(scores)
    level = levels[0] if levels else None
    ylabel = value_label(data.path, data.target)
    pngs = render_plots(model, extra, panel, table, metrics, steps, evaluate, ylabel, level)
    first = forecast_rows(series_view(model, panel, 0, period, Calibration.from_extra(extra), level))
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    # edge: every output is ready; replace them one by one, atomically, evaluate.json last
    _write_bytes(paths.metrics / BY_SERIES_FILE, buf.getvalue())
    for name, png in pngs.items():
        _write_bytes(paths.plots / name, png)
    write_json(paths.plots / "error_by_step.json", steps)
    write_json(paths.plots / "forecast.json", first)
    write_json(paths.metrics / "evaluate.json", metrics)
    sn = metrics["baselines"]["seasonal_naive"]
    log.info(
        "test over %d series (%d windows): sMAPE %.3f, MASE %.3f, OWA %.3f vs Naive2 (seasonal naive OWA %.3f); "
        "mse_scaled LSTM %.5f, repeat_last %.5f, seasonal_naive %.5f; worst by MASE: %s",
        metrics["n_series"],
        metrics["n_windows"],
        metrics["smape"],
        metrics["mase"],
        metrics["owa"],
        sn["owa"],
        metrics["mse_scaled"],
        metrics["baselines"]["repeat_last"]["mse_scaled"],
        sn["mse_scaled"],
        ", ".join(metrics["worst_series"]),
    )
    return PanelEvaluateResult(
        n_series=metrics["n_series"],
        n_windows=metrics["n_windows"],
        mse_scaled=round(metrics["mse_scaled"], 6),
        smape=round(metrics["smape"], 4),
        mase=round(metrics["mase"], 4),
        owa=round(metrics["owa"], 4),
        seasonal_naive_owa=round(sn["owa"], 4),
        beats_baselines=all(metrics["beats"].values()),
    )


__all__ = [
    "WORST_BY",
    "PanelEvaluateResult",
    "error_by_step",
    "evaluate_panel",
    "m4_summary",
    "panel_metrics",
    "plot_series",
    "pooled",
    "run_panel_evaluate",
    "series_table",
    "series_view",
    "worst_series",
]
