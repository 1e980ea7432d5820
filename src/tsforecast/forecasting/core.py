"""Forecast maths, no MLflow: every series' next ``horizon`` steps with intervals, vectorised.

Every way in ends here: the MLflow pyfunc (:mod:`tsforecast.registry.pyfunc`) and
``tsforecast predict`` (:mod:`tsforecast.forecasting.predict`) call :func:`forecast_frame` on a
caller's frame; the ``forecast`` stage (:mod:`tsforecast.forecasting.forecast`) calls
:func:`forecast_long` on the validated long frame. One series is a panel of one:
:func:`forecast_frame` gives it the implicit id where it reads the frame and drops it from the
answer, so a one-series forecast is ``timestamp, forecast, lo_<l>, hi_<l>`` and a panel's has its
id column first. What a history must hold: :mod:`tsforecast.forecasting.history`.

The forecast of each series is the ``horizon`` timestamps after its last one, continuing at
the model's frequency, the point forecast in the data's own units and, per level ``l``
(percent), the interval bounds ``lo_<l>`` and ``hi_<l>`` (:mod:`tsforecast.evaluation.intervals`).
The network, the scaling and the bounds run on chunks of series through
:func:`tsforecast.parallel.map_series` (in-process, a local Dask cluster, or the scheduler at
``orchestration.dask_address``); each chunk carries the weights and its own arrays, never a path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsforecast.dataset.long import with_series_id, without_series_id
from tsforecast.evaluation.intervals import Calibration, level_name, serving_levels
from tsforecast.forecasting.history import ServingSpec, check_table, future_grid, last_windows
from tsforecast.parallel import chunk_ranges, map_series
from tsforecast.training.card import ModelCard
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster

POINT_COLUMNS = ("timestamp", "forecast")
# One series' forecast at L=336, hidden 64, 2 layers took ~2.5 ms on this project's 2-core machine
# (the recurrence over L steps dominates): chunks of ~2,000 series, each a few seconds of work,
# keep the per-task overhead of Dask negligible and the network's batches large.
SECONDS_PER_SERIES = 2e-3
CHUNK_TARGET_S = 4.0
PREDICT_BATCH = 2048  # windows per forward pass (activations ~ PREDICT_BATCH * L * hidden floats)


@dataclass(frozen=True)
class ForecastChunk:
    """One task of :func:`forecast_chunk`: the weights and a chunk of series' raw last windows."""

    args: dict[str, Any]  # the model's constructor arguments
    weights: dict[str, np.ndarray]
    x: np.ndarray  # (n, L, C) raw inputs
    mean: np.ndarray  # (n, C)
    std: np.ndarray  # (n, C)
    calibration: Calibration
    levels: tuple[float, ...]


def forecast_chunk(chunk: ForecastChunk) -> dict[str, np.ndarray]:
    """Point forecast and interval bounds (n, H) each, in the data's units (pure, any process)."""
    model = LSTMForecaster.from_args(chunk.args)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in chunk.weights.items()})
    model.eval()
    scaled = ((chunk.x - chunk.mean[:, None, :]) / chunk.std[:, None, :]).astype(np.float32)  # (n, L, C)
    point = predict_windows(model, scaled, PREDICT_BATCH)  # (n, H) scaled
    mu, sd = chunk.mean[:, :1], chunk.std[:, :1]  # (n, 1): the target's scaler
    out = {POINT_COLUMNS[1]: point * sd + mu}
    for level in chunk.levels:
        lo, hi = chunk.calibration.bounds(point, level)
        out[f"lo_{level_name(level)}"] = lo * sd + mu
        out[f"hi_{level_name(level)}"] = hi * sd + mu
    return out


def forecast_long(
    model: LSTMForecaster,
    card: ModelCard,
    history: pd.DataFrame,
    levels: Sequence[float] | None = None,
    source: str = "model input",
    *,
    address: str | None = None,
    in_process: bool | None = True,
    progress: bool = False,
) -> pd.DataFrame:
    """The next ``horizon`` steps of every series of the long frame ``history``: ``[id, timestamp,
    forecast, lo_<l>, hi_<l>...]``, series in first-appearance order, H rows each.

    ``levels`` are interval levels in percent (default: the levels the model was calibrated
    with, ``[80]``); ``[]`` gives the point forecast only. Bounds hold ``lo <= forecast <= hi``.
    ``address``/``in_process``: where the chunks run (:func:`tsforecast.parallel.map_series`).
    """
    spec = ServingSpec.from_card(model, card)
    calibration = card.calibration
    chosen = serving_levels(calibration, levels)
    w = last_windows(history, spec, source)
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    args = asdict(model.args)
    mean, std = spec.mean[w.rows], spec.std[w.rows]  # (S, C) each series' own scaler
    chunks = [
        ForecastChunk(args, weights, w.x[a:b], mean[a:b], std[a:b], calibration, chosen)
        for a, b in chunk_ranges(len(w.ids), SECONDS_PER_SERIES, target_s=CHUNK_TARGET_S)
    ]
    parts = map_series(
        forecast_chunk, chunks, address, in_process=in_process, desc="forecast chunks", progress=progress
    )
    H = spec.horizon
    out = pd.DataFrame(
        {spec.id_column: np.repeat(w.ids.to_numpy(), H), POINT_COLUMNS[0]: future_grid(w.last, spec.freq, H)}
    )
    for name in parts[0]:  # forecast, then lo_<l>, hi_<l> per level
        out[name] = np.concatenate([p[name] for p in parts]).ravel()
    return out


def forecast_frame(
    model: LSTMForecaster,
    card: ModelCard,
    history: pd.DataFrame,
    levels: Sequence[float] | None = None,
    source: str = "model input",
    **where: Any,
) -> pd.DataFrame:
    """:func:`forecast_long` of a caller's frame: one series gets its implicit id where the frame is
    read and loses it in the answer (``timestamp, forecast, lo_<l>, hi_<l>``); a panel's answer
    has its id column first. ``where``: ``address``, ``in_process``, ``progress``."""
    check_table(history, ServingSpec.from_card(model, card), source)  # the caller's columns, named
    out = forecast_long(model, card, with_series_id(history, card), levels, source, **where)
    return without_series_id(out, card)


__all__ = [
    "POINT_COLUMNS",
    "ForecastChunk",
    "forecast_chunk",
    "forecast_frame",
    "forecast_long",
]
