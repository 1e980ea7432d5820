"""The markdown report a pipeline run leaves in Prefect: metrics vs baselines, the registered
version and alias, a link to the MLflow run. Built from the files the stages write; a missing
file is named in the report rather than failing it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelines.dvc_runner import read_json

EVALUATE_JSON = "metrics/evaluate.json"
# Where the register stage records what it registered (dvc.yaml: reports/; older drafts: models/).
REGISTERED_JSON = ("reports/registered.json", "models/registered.json")
TRAIN_JSON = "metrics/train.json"
METRIC_COLUMNS = ("mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape")
LOWER_IS_BETTER = frozenset(METRIC_COLUMNS)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def metrics_table(evaluate: Mapping[str, Any]) -> list[str]:
    """Rows: the model and each baseline; columns: the metrics any of them has; best in bold."""
    rows: list[tuple[str, Mapping[str, Any]]] = [("LSTM", evaluate)]
    for name, values in (evaluate.get("baselines") or {}).items():
        if isinstance(values, Mapping):
            rows.append((name.replace("_", " "), values))
    columns = [c for c in METRIC_COLUMNS if any(isinstance(r.get(c), int | float) for _, r in rows)]
    best = {}
    for c in columns:
        values = [r[c] for _, r in rows if isinstance(r.get(c), int | float)]
        best[c] = min(values) if c in LOWER_IS_BETTER and values else None
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, r in rows:
        cells = []
        for c in columns:
            cell = _fmt(r.get(c))
            cells.append(f"**{cell}**" if cell and r.get(c) == best[c] else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def mlflow_runs_link(registered: Mapping[str, Any]) -> str | None:
    """``<tracking_uri>/#/experiments/<id>/runs``: the experiment's runs table in the MLflow 3 UI
    (the bare experiment URL may open its GenAI overview instead)."""
    uri = str(registered.get("tracking_uri") or "")
    exp_id = registered.get("experiment_id")
    if not (uri.startswith(("http://", "https://")) and exp_id is not None):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs"


def mlflow_run_link(registered: Mapping[str, Any]) -> str | None:
    """``<tracking_uri>/#/experiments/<id>/runs/<id>`` for an http(s) tracking server."""
    uri = str(registered.get("tracking_uri") or "")
    run_id, exp_id = registered.get("run_id"), registered.get("experiment_id")
    if not (uri.startswith(("http://", "https://")) and run_id and exp_id is not None):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"


def read_registered(root: Path) -> dict[str, Any] | None:
    """The register stage's record of the version it registered, wherever it is kept."""
    for name in REGISTERED_JSON:
        if (found := read_json(root / name)) is not None:
            return found
    return None


def _unchanged_registry(registered: Mapping[str, Any], ran: Sequence[str]) -> list[str]:
    """The register stage did not run: the record is an earlier run's, and nothing moved."""
    name, version = registered.get("model_name", "?"), registered.get("version", "?")
    champion = registered.get("champion_version")
    holder = (
        f"v{champion} remains champion" if champion is not None else "no version holds the champion alias"
    )
    what = "no stage ran" if not ran else "the register stage did not run"
    return [
        f"- {what}; the registry is unchanged ({holder})",
        f"- last registered by an earlier run: `{name}` version {version}",
    ]


def _registered_section(registered: Mapping[str, Any] | None, ran: Sequence[str] | None = None) -> list[str]:
    lines = ["## Registered model", ""]
    if registered is None:
        return [*lines, f"`{REGISTERED_JSON[0]}` not found: the register stage has not run.", ""]
    name, version = registered.get("model_name", "?"), registered.get("version", "?")
    aliases = registered.get("aliases") or []
    shown = ", ".join(f"`@{a}`" for a in aliases) if aliases else "none"
    if ran is not None and "register" not in ran:
        lines += _unchanged_registry(registered, ran)
    else:
        lines.append(f"- `{name}` version **{version}**, aliases: {shown}")
    if "champion" in registered and (ran is None or "register" in ran):
        verdict = "promoted to champion" if registered["champion"] else "not promoted"
        reason = registered.get("reason")
        lines.append(f"- gate: {verdict}" + (f" ({reason})" if reason else ""))
    run_id = registered.get("run_id")
    link = mlflow_run_link(registered)
    if link:
        lines.append(
            f"- MLflow run: [{run_id}]({link}); [all runs of the experiment]({mlflow_runs_link(registered)})"
        )
    elif run_id:
        uri = registered.get("tracking_uri", "?")
        exp = registered.get("experiment_id", "?")
        lines.append(
            f"- MLflow run: `{run_id}` in `{uri}` (browse with `make mlflow-ui`: "
            f"http://127.0.0.1:5000/#/experiments/{exp}/runs/{run_id}; all runs: "
            f"http://127.0.0.1:5000/#/experiments/{exp}/runs)"
        )
    return [*lines, ""]


def _training_section(train: Mapping[str, Any] | None, remote: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Training", ""]
    if remote:
        where = f"on work pool `gpu`, flow run `{remote.get('flow_run_id', '?')}`"
        if remote.get("host"):
            where += f", host `{remote['host']}`"
        lines.append(f"- ran {where}")
    elif train is not None:
        lines.append("- ran in-process on the pipeline's worker")
    if train is None:
        return [*lines, f"- `{TRAIN_JSON}` not found: the train stage has not run.", ""]
    device = str(train.get("device", "?"))
    if remote and remote.get("device_name"):
        device += f" ({remote['device_name']})"
    lines.append(f"- device: `{device}`")
    for key in ("samples_per_second", "epochs", "best_val_loss", "train_seconds", "n_params"):
        if key in train:
            lines.append(f"- {key.replace('_', ' ')}: {_fmt(train[key])}")
    return [*lines, ""]


def _forecast_section(forecast: Mapping[str, Any] | None, stages: Sequence[str]) -> list[str]:
    if "forecast" not in stages:
        return []
    lines = ["## Forecast", ""]
    if forecast is None:
        return [*lines, "No forecast file was published: the forecast stage wrote none.", ""]
    span = f"{forecast.get('first')} .. {forecast.get('last')}"
    columns = ", ".join(f"`{c}`" for c in forecast.get("columns") or [])
    lines.append(f"- `{forecast.get('path')}`: {_fmt(forecast.get('rows'))} rows, {span}; columns {columns}")
    lines.append(f"- table artifact `{forecast.get('artifact_key')}`")
    return [*lines, ""]


def build_report(
    root: Path,
    stages: Sequence[str],
    *,
    failed: str | None = None,
    remote_train: Mapping[str, Any] | None = None,
    forecast: Mapping[str, Any] | None = None,
    ran: Sequence[str] | None = None,
) -> str:
    """The run's markdown: stages, metrics vs baselines, registered version, MLflow link, and
    the published forecast file when the run has a forecast stage.

    ``ran``: the stages that ran (DVC skipped the others as up to date); None: not known.
    """
    evaluate = read_json(root / EVALUATE_JSON)
    registered = read_registered(root)
    train = read_json(root / TRAIN_JSON)
    title = "failed" if failed else "completed"
    lines = [f"# Forecast pipeline run: {title}", "", "Stages: " + " → ".join(stages or ["(none)"]), ""]
    if ran is not None:
        lines += ["Ran: " + (", ".join(ran) if ran else "none (every stage was up to date)"), ""]
    if failed:
        lines += ["## Failure", "", "```", failed.strip(), "```", ""]
    lines += ["## Test metrics vs baselines", ""]
    if evaluate is None:
        lines.append(f"`{EVALUATE_JSON}` not found: the evaluate stage has not run.")
    else:
        n = evaluate.get("n_windows")
        if n is not None:
            lines += [f"Over {_fmt(n)} test windows; `*_scaled` on the train-fit standard scale.", ""]
        lines += ["Lower is better; the best of each column is in bold.", ""]
        lines += metrics_table(evaluate)
    lines.append("")
    lines += _registered_section(registered, ran)
    lines += _training_section(train, remote_train)
    if not failed:
        lines += _forecast_section(forecast, stages)
    return "\n".join(lines).rstrip() + "\n"
