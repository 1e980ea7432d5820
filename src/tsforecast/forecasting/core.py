"""Forecast maths, no MLflow: check a history, build the input window, forecast, add intervals.

Every way in ends here: the MLflow pyfunc (:mod:`tsforecast.registry.pyfunc`), ``tsforecast predict``
(:mod:`tsforecast.forecasting.predict`) and the ``forecast`` stage (:mod:`tsforecast.forecasting.forecast`) all call
:func:`forecast_frame` (a panel model's long frame goes on to :mod:`tsforecast.forecasting.panel_forecast`).

A history is a frame with the model's timestamp column, its target and covariates, at
least ``input_size`` rows at the model's frequency (more are fine: the last
``input_size`` are used). The forecast is a frame of the next ``horizon`` timestamps,
continuing at that frequency, the point forecast in the data's own units and, per level
``l`` (percent), the interval bounds ``lo_<l>`` and ``hi_<l>`` (:mod:`tsforecast.evaluation.intervals`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.dataset.window import Prepared, sliding_windows, window_starts
from tsforecast.errors import DataError, ModelLoadError
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, Calibration, calibrate, level_name, serving_levels
from tsforecast.forecasting.panel_forecast import forecast_panel, numeric_values
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster

POINT_COLUMNS = ("timestamp", "forecast")


@dataclass(frozen=True)
class ForecastSpec:
    """What a history must hold for one model, read from the model file's ``extra``."""

    timestamp_column: str
    columns: tuple[str, ...]  # target first, then covariates
    freq: str  # pandas offset alias, e.g. "30min"
    input_size: int
    horizon: int
    mean: tuple[float, ...]  # train-fit scaler, one entry per column
    std: tuple[float, ...]

    @classmethod
    def from_model(cls, model: LSTMForecaster, extra: dict[str, Any]) -> ForecastSpec:
        """Read the spec saved beside the weights by ``tsforecast train``."""
        if "scaler" not in extra and len((extra.get("series_scalers") or {}).get("ids", [])) == 1:
            # TEMPORARY (monitoring branch, until the forecasting wing reads the model card): a
            # one-series card holds its scaler as the single row of series_scalers
            sc = extra["series_scalers"]
            extra = {**extra, "scaler": {"mean": list(sc["mean"][0]), "std": list(sc["std"][0])}}
        missing = [k for k in ("columns", "scaler", "freq", "timestamp_column") if k not in extra]
        if missing:
            raise ModelLoadError(
                f"the model file lacks {missing} in its metadata; it was not written by `tsforecast train`"
            )
        columns = tuple(str(c) for c in extra["columns"])
        scaler = extra["scaler"]
        if len(columns) != model.args.n_features or len(scaler["mean"]) != len(columns):
            raise ModelLoadError(
                f"the model has {model.args.n_features} input features but its metadata names "
                f"{len(columns)} columns {list(columns)} and {len(scaler['mean'])} scaler entries"
            )
        return cls(
            timestamp_column=str(extra["timestamp_column"]),
            columns=columns,
            freq=str(extra["freq"]),
            input_size=model.args.input_size,
            horizon=model.args.horizon,
            mean=tuple(float(v) for v in scaler["mean"]),
            std=tuple(float(v) for v in scaler["std"]),
        )

    @property
    def target(self) -> str:
        return self.columns[0]

    @property
    def needed(self) -> list[str]:
        return [self.timestamp_column, *self.columns]


def _timestamps(values: pd.Series, spec: ForecastSpec, source: str) -> pd.DatetimeIndex:
    from tsforecast.data.ingest import parse_timestamps

    parsed = parse_timestamps(values.reset_index(drop=True), spec.timestamp_column, source)
    return pd.DatetimeIndex(parsed)


def check_history(
    frame: pd.DataFrame, spec: ForecastSpec, source: str = "model input"
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The last ``input_size`` timestamps and values (L, C) of ``frame``, checked.

    Timestamps may be datetimes or text (ISO 8601, as CSV and JSON requests carry them).
    Fails naming the problem when a column is missing or not numeric, when there are
    too few rows, when a used value is missing, or when the timestamps do not increase
    at the model's frequency.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{source}: expected a table (pandas DataFrame) with columns {spec.needed}, "
            f"got {type(frame).__name__}"
        )
    missing = [c for c in spec.needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: column(s) {missing} not found; columns are {[str(c) for c in frame.columns]}. "
            f"The model needs {spec.needed}"
        )
    L = spec.input_size
    n = len(frame)
    if n < L:
        raise DataError(
            f"{source}: {n} row(s) given; the model needs at least input_size={L} rows "
            f"(the most recent {L} steps at {spec.freq!r}) to forecast the next {spec.horizon}"
        )
    frame = frame.reset_index(drop=True)
    ts = _timestamps(frame[spec.timestamp_column], spec, source)
    steps = np.diff(ts.asi8)
    if len(steps) and (steps <= 0).any():
        i = int(np.argmax(steps <= 0)) + 1
        raise DataError(
            f"{source}: timestamps must increase; row {i} ({ts[i]}) does not come after row {i - 1} "
            f"({ts[i - 1]}) - sort the history and drop duplicates"
        )
    tail = slice(n - L, n)
    values = np.column_stack([numeric_values(frame[c].iloc[tail], c, source) for c in spec.columns])  # (L, C)
    bad = ~np.isfinite(values)
    if bad.any():
        col = int(np.argmax(bad.any(axis=0)))
        rows = np.flatnonzero(bad[:, col])
        at = [str(t) for t in ts[tail][rows[:3]]]
        raise DataError(
            f"{source}: column '{spec.columns[col]}' has {len(rows)} missing or non-finite value(s) "
            f"in the last {L} rows (at {at}); fill them before forecasting"
        )
    used = ts[tail].as_unit("ns")
    expected = pd.date_range(used[0], periods=L, freq=spec.freq).as_unit("ns")
    if not used.equals(expected):
        i = int(np.argmax(used.asi8 != expected.asi8))
        raise DataError(
            f"{source}: the last {L} timestamps must be every {spec.freq!r} (the model's frequency); "
            f"row {n - L + i} is {used[i]}, expected {expected[i]} - fill the gap or resample"
        )
    return used, values


def future_timestamps(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """The ``horizon`` timestamps after ``last``, every ``freq``: the first is one step after."""
    return pd.date_range(last, periods=horizon + 1, freq=freq)[1:]


def val_residuals(model: LSTMForecaster, prepared: Prepared) -> np.ndarray:
    """(N, H) scaled residuals ``y - p`` of every stride-1 validation window, in time order."""
    L, H = prepared.input_size, prepared.horizon
    starts = window_starts(prepared.bounds, "val", L, H, 1)
    X, Y = sliding_windows(prepared.series, L, H)  # views
    return np.asarray(Y[starts], dtype="float64") - predict_windows(model, X[starts])


def calibrate_model(
    model: LSTMForecaster, prepared: Prepared, levels: Sequence[float] = DEFAULT_LEVELS
) -> Calibration:
    """Split-conformal calibration of ``model`` on the validation windows (see intervals.py)."""
    return calibrate(val_residuals(model, prepared), levels)


def forecast_frame(
    model: LSTMForecaster,
    extra: dict[str, Any],
    history: pd.DataFrame,
    levels: Sequence[float] | None = None,
    source: str = "model input",
) -> pd.DataFrame:
    """The ``horizon`` steps after ``history``: ``timestamp``, ``forecast``, ``lo_<l>``, ``hi_<l>``.

    ``levels`` are interval levels in percent (default: the levels the model was calibrated
    with, ``[80]``); ``[]`` gives the point forecast only. Bounds are in the data's units and
    hold ``lo <= forecast <= hi``. A panel model (``extra["id_column"]``) takes a long frame
    of known series and returns ``[id, timestamp, forecast, ...]`` for each
    (:func:`tsforecast.forecasting.panel_forecast.forecast_panel`).
    """
    if extra.get("id_column"):
        return forecast_panel(model, extra, history, levels, source)
    spec = ForecastSpec.from_model(model, extra)
    ts, values = check_history(history, spec, source)
    scaled = (values - np.asarray(spec.mean)) / np.asarray(spec.std)  # (L, C)
    point = predict_windows(model, scaled[None])[0]  # (H,), scaled
    mean, std = spec.mean[0], spec.std[0]
    out = pd.DataFrame(
        {
            POINT_COLUMNS[0]: future_timestamps(ts[-1], spec.freq, spec.horizon),
            POINT_COLUMNS[1]: point * std + mean,
        }
    )
    calibration = Calibration.from_extra(extra)
    chosen = serving_levels(calibration, levels)
    for level in chosen:
        lo, hi = calibration.bounds(point[None], level)  # (1, H) each, scaled
        out[f"lo_{level_name(level)}"] = lo[0] * std + mean
        out[f"hi_{level_name(level)}"] = hi[0] * std + mean
    return out


__all__ = [
    "POINT_COLUMNS",
    "ForecastSpec",
    "calibrate_model",
    "check_history",
    "forecast_frame",
    "future_timestamps",
    "predict_windows",
    "val_residuals",
]
