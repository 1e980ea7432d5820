"""Stage ``forecast``: the horizon after the last validated timestamp, with prediction intervals.

Which model: the registry's champion when ``reports/registered.json`` says it holds this
run's task identity (``champion_version`` set and ``champion_identity == identity``), else
the model this run trained (``models/``); the output and the log say which, and why.
Writes ``forecasts/forecast.parquet`` (``timestamp``, ``forecast``, ``lo_<l>``, ``hi_<l>`` per
level of ``forecast.levels``; H rows starting one step after the data's last timestamp; for a
panel the id column first and H rows per series, each after its own last timestamp),
``plots/future.png`` (recent history, forecast and band) and ``plots/future.json``, and logs
the table to the MLflow run of the registered version when there is one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.config import BUILTIN_TAYLOR, DataConfig, ForecastConfig, OrchestrationConfig
from tsforecast.errors import DataError
from tsforecast.evaluation.intervals import level_name
from tsforecast.forecasting.core import forecast_frame
from tsforecast.forecasting.panel_forecast import forecast_panel
from tsforecast.io import atomic_file, read_json, write_json, write_png
from tsforecast.monitoring.archive import archive_forecast
from tsforecast.paths import Paths
from tsforecast.progress import progress_mode

log = logging.getLogger(__name__)

FORECAST_FILE = "forecast.parquet"
REGISTERED_FILE = "registered.json"  # written by the register stage
UNITS = {BUILTIN_TAYLOR: "MW"}  # value-axis units of the builtin data sets
PLOTTED_SERIES = 4  # a panel's plots/future.* show its first series, in data order


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


def unit_label(data: DataConfig) -> str:
    """The value axis: ``demand (MW)`` for the builtin data, else the target's name."""
    unit = UNITS.get(data.path)
    return f"{data.target} ({unit})" if unit else data.target


def _draw(ax: Any, history: pd.DataFrame, out: pd.DataFrame, data: DataConfig) -> None:
    """On ``ax``: the last 4 H steps of ``history``, the forecast and its band(s), in the data's units."""
    import matplotlib.dates as mdates

    H = len(out)
    recent = history.iloc[-min(len(history), 4 * H) :]
    ax.plot(recent[data.timestamp_column], recent[data.target], color="black", lw=1.1, label="history")
    levels = sorted((c[3:] for c in out.columns if c.startswith("lo_")), key=float, reverse=True)
    for k, lv in enumerate(levels):
        ax.fill_between(
            out["timestamp"],
            out[f"lo_{lv}"],
            out[f"hi_{lv}"],
            color="tab:blue",
            alpha=0.15 + 0.15 * k,
            lw=0,
            label=f"{lv} % interval",
        )
    ax.plot(out["timestamp"], out["forecast"], color="tab:blue", lw=2, label="forecast")
    ax.axvline(out["timestamp"].iloc[0], color="grey", lw=0.8, ls=":")
    ax.set_ylabel(unit_label(data))
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))


def plot_future(history: pd.DataFrame, out: pd.DataFrame, data: DataConfig, title: str, path: Path) -> None:
    """The recent history, the forecast and its band(s), on one axis in the data's units."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    _draw(ax, history, out, data)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def _load(choice: ModelChoice, paths: Paths) -> tuple[Any, dict[str, Any]]:
    if choice.source == "champion":
        from tsforecast.registry.tracking import default_tracking_uri, load_forecaster

        assert choice.uri is not None
        return load_forecaster(choice.uri, default_tracking_uri(paths))
    from tsforecast.training.model import load_model

    return load_model(paths.models / "model.pt")


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
    as for a panel, whose parquet is the table) and the files to ``run_id``."""
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


def plot_panel_future(
    history: pd.DataFrame, out: pd.DataFrame, data: DataConfig, shown: list[Any], title: str, path: Path
) -> None:
    """One panel per series of ``shown``: its recent history, forecast and band(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    id_col = str(data.id_column)
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.6 * len(shown)), dpi=100, squeeze=False)
    for ax, sid in zip(axes[:, 0], shown, strict=True):
        _draw(ax, history[history[id_col] == sid], out[out[id_col] == sid], data)
        ax.set_title(f"{id_col} = {sid}", fontsize=9)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    write_png(fig, path)


def _future_json(out: pd.DataFrame, id_column: str | None) -> list[dict[str, Any]]:
    """``plots/future.json`` rows: timestamp, step, forecast and bounds (and the id for a panel)."""
    values = [c for c in out.columns if c not in ("timestamp", id_column)]
    step = (
        out.groupby(id_column, sort=False).cumcount() + 1 if id_column else pd.Series(range(1, len(out) + 1))
    )
    return [
        {
            **({id_column: r[id_column]} if id_column else {}),
            "timestamp": str(r["timestamp"]),
            "step": int(k),
            **{c: float(r[c]) for c in values},
        }
        for k, r in zip(step, out.to_dict("records"), strict=True)
    ]


def _forecast(
    model: Any,
    extra: dict[str, Any],
    history: pd.DataFrame,
    data: DataConfig,
    forecast: ForecastConfig,
    orchestration: OrchestrationConfig,
    paths: Paths,
) -> pd.DataFrame:
    """The forecast frame: one series (``forecast_frame``) or every series of a panel, in chunks on Dask."""
    if not data.is_panel:
        return forecast_frame(model, extra, history, forecast.levels, source=str(paths.validated))
    if extra.get("id_column") != data.id_column:
        raise DataError(
            f"data.id_column is {data.id_column!r} but the model was trained with id column "
            f"{extra.get('id_column')!r}; run `dvc repro` so train sees the same data"
        )
    return forecast_panel(
        model,
        extra,
        history,
        forecast.levels,
        source=str(paths.validated),
        address=orchestration.dask_address,
        in_process=None,
        progress=progress_mode() != "off",
    )


def run_forecast(
    data: DataConfig, forecast: ForecastConfig, orchestration: OrchestrationConfig, paths: Paths
) -> ForecastResult:
    """Forecast the horizon after data/validated/ with the champion or the local model.

    A panel (``data.id_column``): every series' next H steps, per-series work on Dask at
    ``orchestration.dask_address``; ``plots/future.png`` and ``plots/future.json`` show the first
    :data:`PLOTTED_SERIES` series in data order.
    """
    from tsforecast.data.validate import read_validated

    history, _ = read_validated(paths.validated)  # edge: read
    reg_path = paths.reports / REGISTERED_FILE
    choice = choose_model(read_json(reg_path) if reg_path.is_file() else None)
    model, extra = _load(choice, paths)  # edge: registry or models/
    used = choice.uri if choice.source == "champion" else str(Path("models") / "model.pt")
    log.info("forecasting with the %s model %s: %s", choice.source, used, choice.reason)
    columns = [data.target, *data.covariates]
    if list(extra.get("columns", [])) != columns:
        raise DataError(
            f"the {choice.source} model ({used}) reads columns {extra.get('columns')} but data.target and "
            f"data.covariates name {columns}; run `dvc repro` so train and register see the same data"
        )
    out = _forecast(model, extra, history, data, forecast, orchestration, paths)  # pure (or on Dask)
    parquet = paths.forecasts / FORECAST_FILE
    with atomic_file(parquet, "wb") as fh:  # edge: atomic writes
        out.to_parquet(fh, index=False)
    last = history[data.timestamp_column].iloc[-1]
    png = paths.plots / "future.png"
    if data.is_panel:
        shown = list(pd.unique(out[data.id_column]))[:PLOTTED_SERIES]
        plotted = out[out[data.id_column].isin(shown)]
        write_json(paths.plots / "future.json", _future_json(plotted, data.id_column))
        n = out[data.id_column].nunique()
        title = (
            f"Next {len(plotted) // len(shown)} steps of the first {len(shown)} of {n} series "
            f"({choice.source} model {used})"
        )
        plot_panel_future(history, out, data, shown, title, png)
    else:
        write_json(paths.plots / "future.json", _future_json(out, None))
        title = f"Next {len(out)} steps after {last} ({choice.source} model {used})"
        plot_future(history, out, data, title, png)
    run_id = choice.run_id or (_champion_run(choice, paths) if choice.source == "champion" else None)
    logged = run_id is not None and log_to_run(run_id, out, png, parquet, paths, with_table=not data.is_panel)
    lv = [level_name(v) for v in forecast.levels]
    log.info(
        "forecast %d rows %s .. %s (levels %s) -> %s",
        len(out),
        out["timestamp"].min(),
        out["timestamp"].max(),
        lv,
        parquet,
    )
    archive_forecast(out, history, data, used, extra, paths)  # monitoring: every delivery is kept
    return ForecastResult(
        model=used,
        source=choice.source,
        horizon=int(model.args.horizon),
        first=str(out["timestamp"].min()),
        last=str(out["timestamp"].max()),
        levels=lv,
        output=str(parquet.relative_to(paths.root)),
        mlflow_run=run_id if logged else None,
    )


__all__ = ["ForecastResult", "ModelChoice", "choose_model", "run_forecast", "unit_label"]
