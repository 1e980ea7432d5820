"""Forecast the next ``horizon`` steps from a history: input checks, the forecast, the CLI edge.

The same two functions serve every way in: :func:`forecast` is what the MLflow pyfunc
(:class:`tsforecast.pyfunc.TsForecastPyfunc`) calls, and :func:`run_predict` is
``tsforecast predict``, which loads a model from the MLflow registry (or a run, or a
folder), reads a CSV/Parquet history the way ``ingest`` does and writes the forecast.

A history is a frame with the model's timestamp column, its target and covariates, at
least ``input_size`` rows at the model's frequency (more are fine: the last
``input_size`` are used). The forecast is a frame of the next ``horizon`` timestamps,
continuing at that frequency, and the forecasts in the data's own units.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsforecast.errors import DataError, ModelLoadError, RegistryError
from tsforecast.model import LSTMForecaster

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = ("timestamp", "forecast")


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
    from tsforecast.ingest import parse_timestamps

    parsed = parse_timestamps(values.reset_index(drop=True), spec.timestamp_column, source)
    return pd.DatetimeIndex(parsed)


def _numeric(values: pd.Series, column: str, source: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) or not (
        pd.api.types.is_numeric_dtype(values)
        or values.dtype == object
        or pd.api.types.is_string_dtype(values)
    ):
        raise DataError(f"{source}: column '{column}' has dtype {values.dtype}; it must be numeric")
    converted = pd.to_numeric(values, errors="coerce")
    bad = values[converted.isna() & values.notna()]
    if len(bad):
        raise DataError(
            f"{source}: column '{column}' holds non-numeric values {[str(v) for v in bad.head(3)]} "
            f"(first at row {bad.index[0]}); it must be numeric"
        )
    return converted.to_numpy(dtype="float64")


def check_history(
    frame: pd.DataFrame, spec: ForecastSpec, source: str = "model input"
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The last ``input_size`` timestamps and values (L, C) of ``frame``, checked.

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
    values = np.column_stack([_numeric(frame[c].iloc[tail], c, source) for c in spec.columns])  # (L, C)
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


@torch.no_grad()
def forecast(
    model: LSTMForecaster, spec: ForecastSpec, frame: pd.DataFrame, source: str = "model input"
) -> pd.DataFrame:
    """The next ``horizon`` steps after ``frame``: columns ``timestamp``, ``forecast`` (data units)."""
    ts, values = check_history(frame, spec, source)
    scaled = (values - np.asarray(spec.mean)) / np.asarray(spec.std)  # (L, C)
    x = torch.from_numpy(scaled.astype("float32"))[None]  # (1, L, C)
    model.eval()
    y = model(x)[0].double().numpy()  # (H,), scaled
    y = y * spec.std[0] + spec.mean[0]
    future = pd.date_range(ts[-1], periods=spec.horizon + 1, freq=spec.freq)[1:]
    return pd.DataFrame({OUTPUT_COLUMNS[0]: future, OUTPUT_COLUMNS[1]: y})


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the repo's ``sqlite:///<root>/mlflow.db``."""
    from tsforecast.paths import Paths

    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Paths.from_root().mlflow_db}"


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Point MLflow's tracking and registry at ``uri`` for the block, then restore.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry's
    ``MLFLOW_REGISTRY_URI``) into the environment; both the setting and the variables are
    put back as they were, so one call cannot redirect the next.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    registry = env_before["MLFLOW_REGISTRY_URI"] or uri
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = before
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_history(path: Path, timestamp_column: str) -> pd.DataFrame:
    """A CSV/Parquet history, read and its timestamps parsed the way ``ingest`` does."""
    from tsforecast.ingest import parse_timestamps, read_table

    df = read_table(path)
    df.columns = [str(c) for c in df.columns]
    if timestamp_column not in df.columns:
        raise DataError(f"{path}: column '{timestamp_column}' not found; columns are {list(df.columns)}")
    df[timestamp_column] = parse_timestamps(df[timestamp_column], timestamp_column, str(path))
    return df


def write_forecast(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV (or Parquet for .parquet/.pq) atomically."""
    from tsforecast.io import atomic_file

    if path.suffix.lower() in {".parquet", ".pq"}:
        with atomic_file(path, "wb") as fh:
            frame.to_parquet(fh, index=False)
    else:
        with atomic_file(path, "w") as fh:
            frame.to_csv(fh, index=False)


def load_pyfunc(model_uri: str, tracking_uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` with errors that name the URI and the store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        if "API request to" in first or "Max retries" in first:
            raise RegistryError(f"MLflow at {tracking_uri} is unreachable: {first}") from None
        raise ModelLoadError(
            f"model {model_uri!r} not loadable from {tracking_uri}: {first}. "
            "Register one with `dvc repro` (or `tsforecast register`), or pass --tracking-uri"
        ) from None
    except OSError as e:
        raise ModelLoadError(f"model {model_uri!r}: {e}") from None


def run_predict(
    model_uri: str, input_path: str, output_path: str, tracking_uri: str | None = None
) -> dict[str, Any]:
    """Load ``model_uri``, forecast the horizon after the history in ``input_path``, write it."""
    from tsforecast.pyfunc import TsForecastPyfunc

    uri = tracking_uri or default_tracking_uri()
    with tracking(uri):
        loaded = load_pyfunc(model_uri, uri)
    inner = loaded.unwrap_python_model()
    if not isinstance(inner, TsForecastPyfunc):
        raise ModelLoadError(f"model {model_uri!r} is a {type(inner).__name__}, not a tsforecast forecaster")
    spec = inner.spec
    src = Path(input_path)
    history = read_history(src, spec.timestamp_column)  # edge: read
    out = forecast(inner.model, spec, history, source=str(src))
    write_forecast(out, Path(output_path))  # edge: atomic write
    log.info("forecast %d steps after %s -> %s", len(out), out["timestamp"].iloc[0], output_path)
    return {
        "model": model_uri,
        "rows_in": len(history),
        "horizon": len(out),
        "first": str(out["timestamp"].iloc[0]),
        "last": str(out["timestamp"].iloc[-1]),
        "output": str(output_path),
    }


__all__ = ["ForecastSpec", "check_history", "forecast", "run_predict"]
