"""Stage ``forecast``: the horizon after the last validated timestamp, with prediction intervals.

Which model: the registry's champion when ``reports/registered.json`` says it holds this
run's task identity (``champion_version`` set and ``champion_identity == identity``), else
the model this run trained (``models/``); the output and the log say which, and why.
Writes ``forecasts/forecast.parquet`` (``timestamp``, ``forecast``, ``lo_<l>``, ``hi_<l>`` per
level of ``forecast.levels``; H rows per series, each starting one step after the series' last
timestamp; a panel's id column first, none for one series), ``plots/future.png`` (recent history,
forecast and band of the first series) and ``plots/future.json``, and logs the files to the
MLflow run of the registered version when there is one.

One series is a panel of one: the validated data gets its implicit id where it is read and loses
it where the files are written; between those, every series is forecast one way, in chunks on
Dask at ``orchestration.dask_address`` (:func:`tsforecast.forecasting.core.forecast_long`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.config import DataConfig, ForecastConfig, OrchestrationConfig
from tsforecast.dataset.long import id_column, with_series_id, without_series_id
from tsforecast.errors import DataError
from tsforecast.evaluation.intervals import level_name
from tsforecast.forecasting.core import forecast_long
from tsforecast.forecasting.plots import future_rows, plot_future, shown_series
from tsforecast.io import atomic_file, write_json
from tsforecast.monitoring.archive import archive_forecast
from tsforecast.paths import Paths
from tsforecast.progress import progress_mode
from tsforecast.training.card import ModelCard

log = logging.getLogger(__name__)

FORECAST_FILE = "forecast.parquet"
REGISTERED_FILE = "registered.json"  # written by the register stage
TABLE_ROWS = 5000  # a forecast of at most this many rows is also logged as an MLflow table


@dataclass(frozen=True)
class ModelChoice:
    """Which model forecasts: ``champion`` (a registry URI) or ``local`` (``models/``), and why."""

    source: str  # "champion" | "local"
    uri: str | None  # models:/<name>/<version> for the champion
    run_id: str | None  # the MLflow run to log the forecast to, if any
    reason: str


@dataclass(frozen=True)
class ForecastResult:
    model: str  # what forecast: models:/<name>/<version> or models/model.pt
    source: str  # champion | local
    horizon: int
    first: str
    last: str
    levels: list[str]
    output: str
    mlflow_run: str | None


def choose_model(registered: dict[str, Any] | None) -> ModelChoice:
    """The champion iff it holds this run's identity (convention 4), else the local model."""
    if registered is None:
        return ModelChoice("local", None, None, "no reports/registered.json (register has not run)")
    run_id = registered.get("run_id") or None
    if "identity" not in registered or "champion_identity" not in registered:
        return ModelChoice(
            "local",
            None,
            run_id,
            "reports/registered.json names no model identity (written before identities)",
        )
    name, version = registered.get("model_name"), registered.get("champion_version")
    if version is None:
        return ModelChoice("local", None, run_id, f"{name} has no champion")
    if registered["champion_identity"] != registered["identity"]:
        return ModelChoice(
            "local",
            None,
            run_id,
            f"champion v{version} of {name} is another task identity "
            f"({registered['champion_identity']} != {registered['identity']})",
        )
    same = version == registered.get("version")
    return ModelChoice(
        "champion",
        f"models:/{name}/{version}",
        run_id if same else None,
        f"champion v{version} of {name} holds this run's identity {registered['identity']}",
    )


def _load(choice: ModelChoice, paths: Paths) -> tuple[Any, ModelCard]:
    """(model, its card): the champion from the registry, or models/model.pt."""
    if choice.source == "champion":
        from tsforecast.registry.tracking import default_tracking_uri, load_forecaster

        assert choice.uri is not None
        return load_forecaster(choice.uri, default_tracking_uri(paths))
    from tsforecast.training.model import load_model

    path = paths.models / "model.pt"
    model, extra = load_model(path)
    return model, ModelCard.from_extra(extra, where=str(path))


def check_card(card: ModelCard, data: DataConfig, used: str) -> None:
    """The model reads the columns and the id column params name (the card's one check)."""
    columns = [data.target, *data.covariates]
    if list(card.columns) != columns:  # the pinned wording of this stage's most common mismatch
        raise DataError(
            f"{used} reads columns {list(card.columns)} but data.target and data.covariates name "
            f"{columns}; run `dvc repro` so train and register see the same data"
        )
    card.check(id_column=data.id_column, where=used, fix="run `dvc repro` so train sees the same data")


def _champion_run(choice: ModelChoice, paths: Paths) -> str | None:
    """The MLflow run of the champion version (another run's model)."""
    from mlflow import MlflowClient

    from tsforecast.registry.tracking import default_tracking_uri

    assert choice.uri is not None
    name, version = choice.uri.removeprefix("models:/").rsplit("/", 1)
    try:
        return MlflowClient(tracking_uri=default_tracking_uri(paths)).get_model_version(name, version).run_id
    except Exception as e:
        log.warning("could not find the run of %s: %s", choice.uri, str(e)[:300])
        return None


def log_to_run(
    run_id: str, out: pd.DataFrame, png: Path, parquet: Path, paths: Paths, with_table: bool = True
) -> bool:
    """Log the table (``forecast/forecast_<first>.json``, once per origin; not with ``with_table=False``,
    as for a large panel, whose parquet is the table) and the files to ``run_id``."""
    from mlflow import MlflowClient

    from tsforecast.registry.tracking import default_tracking_uri, tracking

    uri = default_tracking_uri(paths)
    name = f"forecast_{pd.Timestamp(out['timestamp'].iloc[0]):%Y%m%dT%H%M%S}.json"
    table = out.assign(timestamp=out["timestamp"].astype(str))
    try:
        with tracking(uri):
            client = MlflowClient(tracking_uri=uri)
            present = {Path(a.path).name for a in client.list_artifacts(run_id, "forecast")}
            if (
                with_table and name not in present
            ):  # log_table appends to an existing file: log each origin once
                client.log_table(run_id, table, f"forecast/{name}")
            client.log_artifact(run_id, str(parquet), "forecast")
            client.log_artifact(run_id, str(png), "forecast")
    except Exception as e:  # the forecast file is the product; the run is a record of it
        log.warning("could not log the forecast to MLflow run %s at %s: %s", run_id, uri, str(e)[:300])
        return False
    return True


def write_forecast(
    out: pd.DataFrame, history: pd.DataFrame, data: DataConfig, title: str, paths: Paths
) -> tuple[Path, Path]:
    """The write edge: forecast.parquet and plots/future.* (one series without its implicit id)."""
    ids = id_column(data)
    parquet = paths.forecasts / FORECAST_FILE
    with atomic_file(parquet, "wb") as fh:  # edge: atomic writes
        without_series_id(out, data).to_parquet(fh, index=False)
    shown = shown_series(out, ids)
    plotted = out[out[ids].isin(shown)].reset_index(drop=True)
    write_json(paths.plots / "future.json", future_rows(plotted, ids, without_series_id(plotted, data)))
    png = paths.plots / "future.png"
    plot_future(history, out, data, ids, shown, title, png)
    return parquet, png


def _title(out: pd.DataFrame, history: pd.DataFrame, data: DataConfig, what: str, horizon: int) -> str:
    """The plot's title: after the data's end for one series, else how many of how many series it shows."""
    ids = id_column(data)
    n = out[ids].nunique()
    if n == 1:
        return f"Next {horizon} steps after {history[data.timestamp_column].iloc[-1]} ({what})"
    return f"Next {horizon} steps of the first {len(shown_series(out, ids))} of {n} series ({what})"


def run_forecast(
    data: DataConfig, forecast: ForecastConfig, orchestration: OrchestrationConfig, paths: Paths
) -> ForecastResult:
    """Forecast the horizon after data/validated/ with the champion or the local model: every
    series' next H steps, per-series work on Dask at ``orchestration.dask_address``."""
    from tsforecast.data.validate import read_validated

    history = with_series_id(read_validated(paths.validated)[0], data)  # edge: read (a panel of one)
    from tsforecast.registry.tracking import registered_here

    choice = choose_model(registered_here(paths))  # another store's record: the local model
    model, card = _load(choice, paths)  # edge: registry or models/
    used = choice.uri if choice.source == "champion" else str(Path("models") / "model.pt")
    log.info("forecasting with the %s model %s: %s", choice.source, used, choice.reason)
    check_card(card, data, f"the {choice.source} model ({used})")
    out = forecast_long(  # pure (or on Dask)
        model,
        card,
        history,
        forecast.levels,
        source=str(paths.validated),
        address=orchestration.dask_address,
        in_process=None,
        progress=progress_mode() != "off",
    )
    title = _title(out, history, data, f"{choice.source} model {used}", card.horizon)
    parquet, png = write_forecast(out, history, data, title, paths)  # edge: atomic writes
    run_id = choice.run_id or (_champion_run(choice, paths) if choice.source == "champion" else None)
    logged = run_id is not None and log_to_run(
        run_id, without_series_id(out, data), png, parquet, paths, with_table=len(out) <= TABLE_ROWS
    )
    lv = [level_name(v) for v in forecast.levels]
    log.info(
        "forecast %d rows %s .. %s (levels %s) -> %s",
        len(out),
        out["timestamp"].min(),
        out["timestamp"].max(),
        lv,
        parquet,
    )
    delivered = without_series_id(out, data)  # as forecast.parquet holds it
    archive_forecast(delivered, without_series_id(history, data), data, used, card.to_extra(), paths)
    return ForecastResult(
        model=used,
        source=choice.source,
        horizon=card.horizon,
        first=str(out["timestamp"].min()),
        last=str(out["timestamp"].max()),
        levels=lv,
        output=str(parquet.relative_to(paths.root)),
        mlflow_run=run_id if logged else None,
    )


__all__ = ["ForecastResult", "ModelChoice", "check_card", "choose_model", "run_forecast", "write_forecast"]
