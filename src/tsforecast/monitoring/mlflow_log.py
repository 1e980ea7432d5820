"""The MLflow edge of monitoring: realized accuracy as metrics over time, and the shared archive.

Where: the tracking URI the register stage uses (:func:`tsforecast.registry.tracking.tracking_uri`:
``MLFLOW_TRACKING_URI``, else ``sqlite:///<root>/mlflow.db``), experiment ``monitor.experiment``.

* One run per model version, ``realized v<N>`` (tags ``tsforecast.monitor=realized``,
  ``tsforecast.monitor.model_version``): for every archived forecast of that version whose whole
  horizon has arrived, one point per metric stamped at the forecast's origin
  (``realized_mse_scaled``, ``realized_mae``, ``realized_mase``, ``realized_coverage``,
  ``pooled_mse_scaled`` and, for the champion, ``expected_mse_scaled`` and ``expected_upper``), so
  the run's charts show the champion's realized accuracy night by night against its band; each
  night also adds the drift statistics and the decision (``retrain`` 0/1) at the newest row's
  time, and the decision record as an artifact. Points already logged (same timestamp) are not
  logged again, so re-running ``tsforecast monitor`` adds nothing twice. The registered version
  gets the tag ``tsforecast.realized_run`` naming its run.
* One run ``forecast-archive`` (tag ``tsforecast.monitor=archive``) holds a copy of every archive
  file under ``archive/``: ``tsforecast monitor`` uploads the files it does not hold yet, and
  ``tsforecast archive pull`` on another machine downloads the ones missing there.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.config import MonitorConfig, RegisterConfig
from tsforecast.io import atomic_create
from tsforecast.monitoring.archive import origin_of_name
from tsforecast.monitoring.types import MODEL_VERSION, ORIGIN, Expected, finite_or_none
from tsforecast.paths import Paths
from tsforecast.registry.tracking import (
    ensure_experiment,
    local_store,
    mlflow_context,
    tracking_uri,
    with_retries,
)

log = logging.getLogger(__name__)

MONITOR_TAG = "tsforecast.monitor"  # realized | archive
VERSION_TAG = "tsforecast.monitor.model_version"
NAME_TAG = "tsforecast.monitor.model_name"
REALIZED_RUN_TAG = "tsforecast.realized_run"  # on a registered version: its realized-accuracy run
ARCHIVE_RUN = "forecast-archive"
ARCHIVE_ARTIFACTS = "archive"


def to_ms(ts: Any) -> int:
    """Milliseconds since the epoch of a timestamp (a naive one is taken as UTC)."""
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return int(t.value // 1_000_000)


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment(client: Any, uri: str, name: str, paths: Paths) -> str:
    store = local_store(uri)
    artifacts = (
        (store.parent / paths.mlflow_artifacts.name).as_uri() if uri.startswith("sqlite:") and store else None
    )
    return ensure_experiment(client, name, artifacts)


def _download(uri: str, run_id: str, artifact: str, dst: str) -> Path:
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=dst, tracking_uri=uri
        )
    )


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def ensure_run(client: Any, experiment_id: str, tags: dict[str, str], name: str, note: str = "") -> str:
    """The run of ``experiment_id`` carrying ``tags`` (created, with ``name``, when there is none)."""
    query = " and ".join(f"tags.`{k}` = '{_quote(v)}'" for k, v in tags.items())
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, tags={**tags, "mlflow.note.content": note}, run_name=name)
    client.set_terminated(run.info.run_id)  # a record, not a running job: it is FINISHED in the UI
    return run.info.run_id


def log_points(client: Any, run_id: str, points: dict[str, list[tuple[int, float]]]) -> int:
    """Log ``{key: [(timestamp_ms, value), ...]}`` once each: timestamps the key holds are skipped;
    new points continue the key's steps in time order. Returns how many were logged."""
    from mlflow.entities import Metric

    batch = []
    for key, series in points.items():
        history = client.get_metric_history(run_id, key)
        have = {m.timestamp for m in history}
        step = max((m.step for m in history), default=-1) + 1
        for ts, value in sorted(series):
            if ts in have or value is None:
                continue
            batch.append(Metric(key, float(value), int(ts), step))
            have.add(ts)
            step += 1
    for i in range(0, len(batch), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=batch[i : i + 1000])
    return len(batch)


def _origin_points(rows: pd.DataFrame, coverage: str | None, expected: Expected | None) -> dict[str, list]:
    """The per-origin metric points of one version's complete deliveries."""
    stamps = [to_ms(t) for t in rows[ORIGIN]]
    cols = {"realized_mse_scaled": "mse_scaled", "realized_mae": "mae", "realized_mase": "mase",
            "pooled_mse_scaled": "pooled_mse_scaled", "steps_observed": "steps_observed"}  # fmt: skip
    if coverage:
        cols["realized_coverage"] = f"coverage_{coverage}"
    points = {
        key: [(t, finite_or_none(v)) for t, v in zip(stamps, rows[col], strict=True)]
        for key, col in cols.items()
        if col in rows.columns
    }
    if expected is not None:
        points["expected_mse_scaled"] = [(t, expected.mse_scaled) for t in stamps]
        points["expected_upper"] = [(t, expected.upper) for t in stamps]
    return points


def _night_points(report: dict[str, Any], at: int) -> dict[str, list]:
    """The drift statistics and the decision, at the newest row's time."""
    drift = report.get("drift") or {}
    largest = drift.get("largest") or {}
    points = {
        f"drift_{k}": [(at, finite_or_none(abs(v) if k != "profile" else v))]
        for k, v in largest.items()
        if v is not None
    }
    points["drift_share"] = [(at, finite_or_none(drift.get("share_drifted")))]
    points["retrain"] = [(at, 1.0 if report["decision"]["retrain"] else 0.0)]
    return points


def _log_once(
    paths: Paths, monitor: MonitorConfig, register: RegisterConfig, origins: pd.DataFrame,
    report: dict[str, Any], archive_files: list[Path], record: Path | None,
) -> dict[str, Any]:  # fmt: skip
    uri = tracking_uri(paths)
    client = _client(uri)
    experiment_id = _experiment(client, uri, monitor.experiment, paths)
    champion = report.get("champion", {}).get("model_version")
    band = report.get("expected") or {}
    expected = Expected(**band) if band.get("upper") is not None else None
    coverage = report.get("coverage_level")
    runs: dict[str, str] = {}
    complete = origins[origins["complete"]] if "complete" in origins.columns else origins.iloc[:0]
    versions = list(dict.fromkeys([*complete[MODEL_VERSION].astype(str), *([champion] if champion else [])]))
    logged = 0
    for version in versions:
        tags = {MONITOR_TAG: "realized", NAME_TAG: register.model_name, VERSION_TAG: version}
        name = f"realized v{version}" if version.isdigit() else f"realized {version}"
        note = f"Realized accuracy of {register.model_name} {name[9:]}: one point per forecast origin."
        run_id = runs[version] = ensure_run(client, experiment_id, tags, name, note)
        rows = complete[complete[MODEL_VERSION].astype(str) == version]
        logged += log_points(
            client, run_id, _origin_points(rows, coverage, expected if version == champion else None)
        )
        if version.isdigit():
            try:
                client.set_model_version_tag(register.model_name, version, REALIZED_RUN_TAG, run_id)
            except Exception as e:  # noqa: BLE001 - a version of another registry: the tag is a nicety
                log.debug("could not tag %s v%s: %s", register.model_name, version, e)
    if champion and report.get("data_end"):
        logged += log_points(client, runs[champion], _night_points(report, to_ms(report["data_end"])))
        if record is not None:
            client.log_artifact(runs[champion], str(record), "decisions")
    uploaded = push_archive(client, experiment_id, archive_files)
    return {"tracking_uri": uri, "experiment_id": experiment_id, "runs": runs,
            "champion_run": runs.get(champion) if champion else None, "points_logged": logged,
            "archive_uploaded": uploaded}  # fmt: skip


def log_monitoring(
    paths: Paths, monitor: MonitorConfig, register: RegisterConfig, origins: pd.DataFrame,
    report: dict[str, Any], archive_files: list[Path], record: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """Log the realized accuracy, the night's drift and decision, and the new archive files (see
    the module doc); retried like the register stage (``register.max_retries``)."""
    uri = tracking_uri(paths)
    with mlflow_context(uri):
        return with_retries(
            lambda: _log_once(paths, monitor, register, origins, report, archive_files, record),
            uri, register.max_retries, register.retry_backoff_s, what="log the realized accuracy",
        )  # fmt: skip


def log_gate(
    paths: Paths, monitor: MonitorConfig, register: RegisterConfig, champion: str, payload: dict[str, Any],
    record: Path, data_end: pd.Timestamp | None,
) -> None:  # fmt: skip
    """The gate's verdict on a decided retrain, in the realized run of the champion it challenged:
    the record as an artifact, ``retrain_accepted`` (0/1) at the decision's data time."""
    uri = tracking_uri(paths)

    def once() -> None:
        client = _client(uri)
        experiment_id = _experiment(client, uri, monitor.experiment, paths)
        tags = {MONITOR_TAG: "realized", NAME_TAG: register.model_name, VERSION_TAG: champion}
        run_id = ensure_run(
            client, experiment_id, tags, f"realized v{champion}" if champion.isdigit() else champion
        )
        client.log_artifact(run_id, str(record), "decisions")
        if data_end is not None and payload.get("retrain_ran"):
            log_points(
                client, run_id, {"retrain_accepted": [(to_ms(data_end), 1.0 if payload["champion"] else 0.0)]}
            )

    with mlflow_context(uri):
        with_retries(once, uri, register.max_retries, register.retry_backoff_s, what="log the gate's verdict")


# ---------------------------------------------------------------------------- the shared archive


def archive_run(client: Any, experiment_id: str) -> str:
    tags = {MONITOR_TAG: "archive"}
    note = "Every delivered forecast (forecasts/archive/), shared: `tsforecast archive pull` fetches them."
    return ensure_run(client, experiment_id, tags, ARCHIVE_RUN, note)


def push_archive(client: Any, experiment_id: str, files: list[Path]) -> int:
    """Upload the archive files the store does not hold yet; returns how many."""
    if not files:
        return 0
    run_id = archive_run(client, experiment_id)
    held = {Path(a.path).name for a in client.list_artifacts(run_id, ARCHIVE_ARTIFACTS)}
    new = [p for p in files if p.name not in held]
    for path in new:
        client.log_artifact(run_id, str(path), ARCHIVE_ARTIFACTS)
    return len(new)


def pull_archive(
    paths: Paths, monitor: MonitorConfig, folder: Path, since: pd.Timestamp | None = None
) -> list[Path]:
    """Download the archive files of the shared store that ``folder`` lacks (origin >= ``since``)."""
    uri = tracking_uri(paths)
    fetched: list[Path] = []
    with mlflow_context(uri):
        client = _client(uri)
        experiment = client.get_experiment_by_name(monitor.experiment)
        if experiment is None:
            return []
        run_id = archive_run(client, experiment.experiment_id)
        names = [Path(a.path).name for a in client.list_artifacts(run_id, ARCHIVE_ARTIFACTS)]
        local = {p.name for p in folder.glob("*.parquet")} if folder.is_dir() else set()
        wanted = [
            n
            for n in names
            if n not in local and (since is None or (origin_of_name(Path(n)) or since) >= since)
        ]
        with tempfile.TemporaryDirectory(prefix="tsforecast-archive-") as tmp:
            for name in wanted:
                got = _download(uri, run_id, f"{ARCHIVE_ARTIFACTS}/{name}", tmp)
                try:
                    with atomic_create(folder / name) as fh:
                        fh.write(got.read_bytes())
                except FileExistsError:
                    continue
                fetched.append(folder / name)
    return fetched


def champion_backtest(paths: Paths, model_name: str, version: str) -> tuple[dict[str, Any], str] | None:
    """``metrics/backtest.json`` as logged to the run of ``model_name`` v``version`` (None: not found)."""
    uri = tracking_uri(paths)
    try:
        with mlflow_context(uri):
            client = _client(uri)
            run_id = client.get_model_version(model_name, version).run_id
            with tempfile.TemporaryDirectory(prefix="tsforecast-backtest-") as tmp:
                got = _download(uri, run_id, "metrics/backtest.json", tmp)
                metrics = json.loads(got.read_text())
    except Exception as e:  # noqa: BLE001 - no band is a reported state, not a failure
        log.warning("no backtest of %s v%s in MLflow at %s: %s", model_name, version, uri, str(e)[:300])
        return None
    return metrics, f"MLflow run {run_id} of {model_name} v{version}: metrics/backtest.json"


__all__ = [
    "ARCHIVE_RUN",
    "MONITOR_TAG",
    "NAME_TAG",
    "REALIZED_RUN_TAG",
    "VERSION_TAG",
    "champion_backtest",
    "ensure_run",
    "log_gate",
    "log_monitoring",
    "log_points",
    "pull_archive",
    "push_archive",
    "to_ms",
]
