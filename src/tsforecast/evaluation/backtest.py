"""Stage ``backtest``: rolling-origin evaluation inside every series' test part, no refit.

One series is a panel of one. Each series forecasts H steps from ``n`` origins at evenly spaced
positions among its stride-1 test windows (always the first, whose forecast covers the first H
test rows, and for ``n >= 2`` the last, whose forecast ends on the last test row), with the
trained weights and each series' train-fit scaler fixed (Darts' ``historical_forecasts(retrain=
False)``; a refit would cost ``n`` times the train stage). An origin (``cutoff``, as in
statsforecast's ``cross_validation``) is the last observed step.

``n`` is ``backtest.n_cutoffs``, or fewer when some series' test part holds fewer windows (the
M4 protocol, test = H, holds one): ``metrics/backtest.json`` reports the number used
(``n_cutoffs``) and the one asked for (``n_cutoffs_requested``). Asking for more origins than the
test period holds over all series (for one series: more than its test windows) is an error naming
the value and the limit, except under the M4 protocol, where every series has one origin. With
``n_cutoffs`` equal to the test windows of every series the pooled metrics are evaluate's.

Origin ``k`` of every series is scored together: ``by_cutoff[k]`` has its ``cutoff`` (ISO
timestamp; the latest over series when their ends differ), ``steps_to_end`` (median over series;
min and max beside it), the metrics pooled over its windows (``mse_scaled``, ``mae_scaled``,
``mse``, ``mae``, ``rmse``) and the M4 measures averaged over series (``smape``, ``mase``, ``owa``
against Naive2), for the LSTM and each baseline. ``metrics/backtest.parquet``: one row per series,
origin and step, in data units ([id column,] ``origin``, ``cutoff``, ``timestamp``, ``step``,
``actual``, one column per forecaster). Per-series work runs through ``parallel.map_series``
(Dask at ``orchestration.dask_address``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tsforecast.config import BacktestConfig, EvaluateConfig, OrchestrationConfig
from tsforecast.dataset.auto import panel_period
from tsforecast.dataset.long import SERIES_ID, without_series_id
from tsforecast.dataset.panel import Panel, load_panel
from tsforecast.errors import DataError
from tsforecast.evaluation.baselines import check_period
from tsforecast.evaluation.evaluate import read_model
from tsforecast.evaluation.metrics import beats, m4_summary, pooled, series_table
from tsforecast.evaluation.names import (
    BACKTEST_JSON,
    BACKTEST_PARQUET,
    BACKTEST_PNG,
    BASELINES,
    FORECASTERS,
    MODEL_KEY,
)
from tsforecast.evaluation.plots import plot_backtest
from tsforecast.evaluation.scoring import ChunkScores, Job, check_model, score_panel
from tsforecast.io import atomic_file, write_json
from tsforecast.paths import Paths
from tsforecast.training.model import LSTMForecaster

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestResult:
    n_cutoffs: int
    n_cutoffs_requested: int
    n_series: int
    first_cutoff: str
    last_cutoff: str
    refit: bool
    mse_scaled: float
    repeat_last_mse_scaled: float
    seasonal_naive_mse_scaled: float
    owa: float


def origins_per_series(panel: Panel, requested: int) -> int:
    """The origins each series forecasts from: ``requested``, or as many as the shortest test part
    holds (a warning). More than the test period's windows over all series is an error, unless every
    test part holds one window (the M4 protocol: the backtest is then evaluate's one origin)."""
    count = panel.windows("test").count
    total, shortest = int(count.sum()), int(count.min()) if count.size else 0
    m4_protocol = shortest == 1 and int(count.max()) == 1
    if requested < 1 or shortest < 1 or (requested > total and not m4_protocol):
        rows = int(np.diff(panel.part_bounds("test"), axis=1).sum())
        raise DataError(
            f"backtest.n_cutoffs={requested} but the test period ({rows} rows of {panel.n_series} series, "
            f"horizon {panel.horizon}) has {total} forecast origins with {panel.horizon} actual values "
            f"after them; use 1 <= n_cutoffs <= {max(shortest, 1)} or a larger split.test"
        )
    if requested > shortest:
        log.warning(
            "backtest.n_cutoffs=%d but the shortest test part allows %d origin(s) per series: using %d",
            requested,
            shortest,
            shortest,
        )
    return min(requested, shortest)


def origin_timestamps(panel: Panel, series: np.ndarray, rows: np.ndarray) -> pd.DatetimeIndex:
    """The timestamps of local ``rows`` of ``series`` (vectorised for fixed frequencies)."""
    offset = to_offset(panel.freq)
    first = pd.DatetimeIndex(panel.first[series])
    try:
        step = pd.Timedelta(offset)
    except ValueError:  # calendar offsets (MS, W-SUN, ...): one row at a time
        return pd.DatetimeIndex([f + int(r) * offset for f, r in zip(first, rows, strict=True)])
    return first + pd.to_timedelta(np.asarray(rows, dtype=np.int64) * step.value, unit="ns")


def _scores(
    flat: dict[str, dict[str, float]], m4s: dict[str, dict[str, float]], name: str
) -> dict[str, float]:
    return {**flat[name], **m4s[name]}


def backtest_metrics(
    scores: ChunkScores, table: pd.DataFrame, panel: Panel, n: int, requested: int, period: int
) -> dict[str, Any]:
    """The ``metrics/backtest.json`` contract (see the module doc)."""
    H, S = panel.horizon, panel.n_series
    origin = scores.origin.reshape(S, n)
    to_end = panel.lengths[:, None] - 1 - origin  # (S, n) steps from each origin to its series' end
    stamps = np.asarray(origin_timestamps(panel, np.repeat(np.arange(S), n), origin.ravel())).reshape(S, n)
    by_cutoff = []
    for k in range(n):
        rows = np.arange(k, S * n, n)
        flat, m4s = pooled(scores, H, rows), m4_summary(table.iloc[rows])
        steps = to_end[:, k]
        by_cutoff.append(
            {
                "cutoff": pd.Timestamp(stamps[:, k].max()).isoformat(),
                "origin": k + 1,
                "steps_to_end": int(np.median(steps)),
                "steps_to_end_min": int(steps.min()),
                "steps_to_end_max": int(steps.max()),
                **_scores(flat, m4s, MODEL_KEY),
                "baselines": {b: _scores(flat, m4s, b) for b in BASELINES},
            }
        )
    flat, m4s = pooled(scores, H), m4_summary(table)
    ours = _scores(flat, m4s, MODEL_KEY)
    return {
        "n_cutoffs": n,
        "n_cutoffs_requested": requested,
        "n_series": S,
        **ours,
        "baselines": {b: _scores(flat, m4s, b) for b in BASELINES},
        "beats": {b: beats(ours["mse_scaled"], flat[b]["mse_scaled"]) for b in BASELINES},
        "refit": False,
        "horizon": H,
        "input_size": panel.input_size,
        "seasonal_period": period,
        "by_cutoff": by_cutoff,
    }


def backtest_rows(scores: ChunkScores, panel: Panel, n: int) -> pd.DataFrame:
    """``metrics/backtest.parquet``: one row per series, origin and step, forecasts in data units."""
    S, H = panel.n_series, panel.horizon
    s = np.repeat(np.arange(S), n * H)  # (S*n*H,)
    origin = np.repeat(scores.origin, H)
    step = np.tile(np.arange(1, H + 1), S * n)
    frame = pd.DataFrame(
        {
            str(panel.ids.name or SERIES_ID): panel.ids.to_numpy()[s],
            "origin": np.tile(np.repeat(np.arange(1, n + 1), H), S),
            "cutoff": origin_timestamps(panel, s, origin),
            "timestamp": origin_timestamps(panel, s, origin + step),
            "step": step,
        }
    )
    for name in ("actual", *FORECASTERS):
        frame[name] = scores.forecasts[name].ravel()
    return frame


def backtest_model(
    model: LSTMForecaster,
    panel: Panel,
    period: int,
    requested: int,
    address: str | None = None,
    *,
    in_process: bool | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Forecast from the origins of every series' test part and score them: (backtest.json, rows)."""
    check_model(model, panel)
    check_period(period, panel.input_size)
    n = origins_per_series(panel, requested)
    job = Job.for_model(model, period, n_origins=n, forecasts=True)
    scores = score_panel(job, panel, address, in_process=in_process, desc="backtest")  # compute
    table = series_table(scores, panel.horizon, (), n_origins=n)
    return backtest_metrics(scores, table, panel, n, requested, period), backtest_rows(scores, panel, n)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def run_backtest(
    evaluate: EvaluateConfig,
    backtest: BacktestConfig,
    paths: Paths,
    orchestration: OrchestrationConfig | None = None,
) -> BacktestResult:
    """Forecast from up to ``backtest.n_cutoffs`` origins in each series' test part; score each origin."""
    panel = load_panel(paths.prepared)  # edge: read
    model, card = read_model(paths, panel)
    address = (orchestration or OrchestrationConfig()).dask_address
    period = panel_period(evaluate.seasonal_period, panel).value  # auto: as evaluate resolves it
    m, frame = backtest_model(model, panel, period, backtest.n_cutoffs, address)
    frame = without_series_id(frame, card)  # one series: no id column
    plot_rows = [
        {"origin": c["origin"], "cutoff": c["cutoff"], MODEL_KEY: c["mse_scaled"],
         **{b: c["baselines"][b]["mse_scaled"] for b in BASELINES}}
        for c in m["by_cutoff"]
    ]  # fmt: skip
    png = plot_backtest(m)
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    # edge: every output is ready; replace them one by one, atomically, backtest.json last
    _write_bytes(paths.metrics / BACKTEST_PARQUET, buf.getvalue())
    _write_bytes(paths.plots / BACKTEST_PNG, png)
    write_json(paths.plots / BACKTEST_JSON, plot_rows)
    write_json(paths.metrics / BACKTEST_JSON, m)
    sn = m["baselines"]["seasonal_naive"]
    log.info(
        "backtest over %d series x %d origins (%s .. %s, no refit): mse_scaled LSTM %.5f, repeat_last %.5f, "
        "seasonal_naive %.5f; OWA %.3f",
        m["n_series"],
        m["n_cutoffs"],
        m["by_cutoff"][0]["cutoff"],
        m["by_cutoff"][-1]["cutoff"],
        m["mse_scaled"],
        m["baselines"]["repeat_last"]["mse_scaled"],
        sn["mse_scaled"],
        m["owa"],
    )
    return BacktestResult(
        n_cutoffs=m["n_cutoffs"],
        n_cutoffs_requested=m["n_cutoffs_requested"],
        n_series=m["n_series"],
        first_cutoff=m["by_cutoff"][0]["cutoff"],
        last_cutoff=m["by_cutoff"][-1]["cutoff"],
        refit=False,
        mse_scaled=round(m["mse_scaled"], 6),
        repeat_last_mse_scaled=round(m["baselines"]["repeat_last"]["mse_scaled"], 6),
        seasonal_naive_mse_scaled=round(sn["mse_scaled"], 6),
        owa=round(m["owa"], 4),
    )


__all__ = [
    "BacktestResult",
    "backtest_metrics",
    "backtest_model",
    "backtest_rows",
    "origin_timestamps",
    "origins_per_series",
    "run_backtest",
]
