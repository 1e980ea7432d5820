"""``tsforecast predict``: forecast the horizon after a history file, or after the validated data.

The CLI edge only: load a model from the MLflow registry (or a run, or a local MLflow model
folder), read the history (a CSV/Parquet file the way ``ingest`` reads one, or
``data/validated/`` when no ``--input`` is given), call
:func:`tsforecast.forecasting.core.forecast_frame` (every series the history holds; one series
without an id column) and write the table.

A history file holds the model's timestamp column, its target and its covariates (the
columns named by ``data.timestamp_column``, ``data.target`` and ``data.covariates`` when it
was trained), at least ``window.input_size`` rows, one every ``data.freq`` without gaps. For a
panel model it is a long frame that also holds the id column (``data.id_column``): at least
``window.input_size`` rows of each known series; the output then has a row per series and step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.errors import DataError
from tsforecast.forecasting.core import forecast_frame
from tsforecast.paths import Paths
from tsforecast.registry.tracking import default_tracking_uri, load_forecaster, tracking

log = logging.getLogger(__name__)


def read_history(path: Path, timestamp_column: str) -> pd.DataFrame:
    """A CSV/Parquet history, read and its timestamps parsed the way ``ingest`` does."""
    from tsforecast.data.ingest import parse_timestamps, read_table

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


def run_predict(
    model_uri: str,
    input_path: str | None,
    output_path: str,
    tracking_uri: str | None = None,
    levels: Sequence[float] | None = None,
    paths: Paths | None = None,
) -> dict[str, Any]:
    """Load ``model_uri``, forecast the horizon after the history (``input_path`` or
    ``data/validated/``), write it to ``output_path``."""
    from tsforecast.data.validate import read_validated
    from tsforecast.evaluation.intervals import check_levels

    uri = tracking_uri or default_tracking_uri()
    model, card = load_forecaster(model_uri, uri)
    if input_path is None:
        paths = paths or Paths.from_root()
        history, _ = read_validated(paths.validated)  # edge: read
        source = str(paths.validated)
    else:
        history = read_history(Path(input_path), card.timestamp_column)  # edge: read
        source = str(input_path)
    chosen = None if levels is None else check_levels(levels, "--levels")
    out = forecast_frame(model, card, history, chosen, source=source)
    write_forecast(out, Path(output_path))  # edge: atomic write
    last = pd.Timestamp(out["timestamp"].iloc[0]) - pd.tseries.frequencies.to_offset(card.freq)
    n_series = len(out) // card.horizon
    log.info(
        "forecast %d steps%s after %s (%s .. %s) -> %s",
        card.horizon,
        f" of {n_series} series (the first)" if n_series > 1 else "",
        last,
        out["timestamp"].iloc[0],
        out["timestamp"].iloc[-1],
        output_path,
    )
    return {
        "model": model_uri,
        "rows_in": len(history),
        "horizon": card.horizon,
        "n_series": n_series,
        "first": str(out["timestamp"].iloc[0]),
        "last": str(out["timestamp"].iloc[-1]),
        "input": source,
        "output": str(output_path),
    }


__all__ = ["read_history", "run_predict", "tracking", "write_forecast"]
