"""The MLflow edge: where the store is, retries, logging the pipeline run, registering a version.

The only place that knows the tracking-URI default (``sqlite:///<repo root>/mlflow.db``,
or ``MLFLOW_TRACKING_URI`` when set): :func:`tracking_uri`, :func:`default_tracking_uri`.

Retries live here and only here (:func:`with_retries`): MLflow's own HTTP retries are
switched off for the block (:data:`HTTP_ENV_DEFAULTS`), and an unreachable store fails,
after ``register.max_retries`` retries, with a :class:`TransientError` (the CLI exits 75).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import numpy as np

from tsforecast.errors import ModelLoadError, RegistryError, TransientError
from tsforecast.io import read_json
from tsforecast.lineage import flat_metrics
from tsforecast.paths import Paths
from tsforecast.registry_types import FINGERPRINT_TAG, MODEL_ARTIFACT, MODEL_URI_TAG, Candidate

log = logging.getLogger(__name__)

T = TypeVar("T")

# One retry layer: ours. MLflow's HTTP client would retry 7 times with minutes of back-off.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
LOCK_TIMEOUT_S = 600.0
RUN_SPAN_MAX_S = 24 * 3600.0  # an MLflow run starts when training did, if that is within a day
MAX_BACKOFF_S = 60.0

# ---------------------------------------------------------------------------- where the store is


def tracking_uri(paths: Paths) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a real server), else ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db}"


def default_tracking_uri(paths: Paths | None = None) -> str:
    """:func:`tracking_uri` of ``paths`` (default: the repo around the working directory)."""
    return tracking_uri(paths or Paths.from_root())


def local_store(uri: str) -> Path | None:
    """The file or folder of a local store (sqlite, file:), None for a server."""
    if uri.startswith("sqlite:///"):
        rest = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
        return Path(rest) if Path(rest).is_absolute() else Path.cwd() / rest
    parsed = urlparse(uri)
    if parsed.scheme == "file" or (parsed.scheme == "" and uri.startswith(("/", "."))):
        return Path(unquote(parsed.path)).resolve()
    return None


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


@contextlib.contextmanager
def mlflow_context(uri: str) -> Iterator[None]:
    """Tracking + registry URI set, MLflow's HTTP retries off, its logger quiet; all restored after."""
    import mlflow  # noqa: F401  (first: importing it resets its logger's level)

    saved_env = {k: os.environ.get(k) for k in HTTP_ENV_DEFAULTS}
    for k, v in HTTP_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)
    # MLflow sets its logger to INFO when imported (table creation, input example checks...)
    mlflow_log = logging.getLogger("mlflow")
    saved_level = mlflow_log.level
    if not log.isEnabledFor(logging.DEBUG):
        mlflow_log.setLevel(logging.WARNING)
    try:
        with tracking(uri):
            yield
    finally:
        mlflow_log.setLevel(saved_level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[bool]:
    """A file lock beside a local store (yields True), nothing for a server (yields False)."""
    store = local_store(uri)
    if store is None:
        yield False
        return
    from filelock import FileLock, Timeout

    store.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{store}-lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire(timeout=0.01)
    except Timeout:
        log.info("another registration holds %s-lock; waiting for it", store)
        try:
            lock.acquire()
        except Timeout:
            raise RegistryError(
                f"{store}-lock is held for more than {LOCK_TIMEOUT_S:.0f} s by another registration; "
                "if none is running, delete the lock file"
            ) from None
    try:
        yield True
    finally:
        lock.release()


# ---------------------------------------------------------------------------- retries: the one layer


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (MLflow's can hold a whole response)."""
    text = str(e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:400]


def is_transient(e: BaseException) -> bool:
    """A failure worth retrying: the server unreachable, timing out, overloaded or locked."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    if "database is locked" in str(e):  # sqlite busy beyond its timeout
        return True
    if isinstance(e, MlflowException):
        if e.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            return True
        markers = ("Max retries exceeded", "Connection refused", "Connection aborted", "timed out")
        return "API request to" in str(e) and any(m in str(e) for m in markers)
    return False


def with_retries(fn: Callable[[], T], uri: str, retries: int, backoff_s: float, what: str = "register") -> T:
    """Run ``fn``; retry transient failures ``retries`` times with doubling back-off.

    Raises :class:`TransientError` when the store stays unreachable, :class:`RegistryError`
    when MLflow refuses (not retried); our own errors pass through.
    """
    from mlflow.exceptions import MlflowException

    attempts = retries + 1
    t0 = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                if isinstance(e, MlflowException):
                    raise RegistryError(f"MLflow at {uri} refused to {what}: {first_line(e)}") from None
                raise
            if attempt == attempts:
                raise TransientError(
                    f"MLflow at {uri} is unreachable: {attempts} attempt(s) over "
                    f"{time.monotonic() - t0:.0f} s failed ({first_line(e)[:200]}); the {what} step "
                    "did not finish. Start the server (or unset "
                    "MLFLOW_TRACKING_URI to use the local sqlite store), then rerun `dvc repro`: "
                    "it finishes the registration without a duplicate version"
                ) from None
            wait = min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
            log.warning(
                "MLflow at %s: attempt %d/%d failed (%s); retrying in %.1f s",
                uri,
                attempt,
                attempts,
                first_line(e)[:160],
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- lookups


def ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (or restored from deleted) when needed."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            # the kind makes the MLflow 3 UI open the experiment on its runs, not a GenAI overview
            kind = {"mlflow.experimentKind": "custom_model_development"}
            return client.create_experiment(name, artifact_location=artifact_location, tags=kind)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)  # created concurrently
    if exp.lifecycle_stage == "deleted":
        log.info("restoring deleted MLflow experiment %r", name)
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def find_version(client: Any, name: str, fingerprint: str) -> Any | None:
    """The version registered earlier for this fingerprint (a rerun), if any."""
    found = client.search_model_versions(
        f"name = '{_quote(name)}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'", max_results=10
    )
    return min(found, key=lambda mv: int(mv.version)) if found else None


def find_logged_run(client: Any, experiment_id: str, fingerprint: str) -> str | None:
    """A finished run for this fingerprint whose model was logged; unfinished ones are deleted."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{FINGERPRINT_TAG}` = '{fingerprint}'", max_results=20
    )
    keep = None
    for run in sorted(runs, key=lambda r: r.info.start_time or 0):
        if keep is None and run.info.status == "FINISHED" and MODEL_URI_TAG in run.data.tags:
            keep = run.info.run_id
        else:
            log.info("deleting MLflow run %s left by an interrupted registration", run.info.run_id)
            client.delete_run(run.info.run_id)
    return keep


def download_model(name: str, version: int) -> tuple[Any, dict[str, Any]] | str:
    """(model, extra) of a registered version's ``model.pt``, or why it cannot be loaded."""
    import mlflow

    from tsforecast.model import load_model

    with tempfile.TemporaryDirectory(prefix="tsforecast-champion-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        )
        found = sorted(local.rglob("model.pt"))
        if not found:
            return f"its artifacts hold no model.pt ({name} v{version} is not a tsforecast model)"
        try:
            return load_model(found[0])
        except ModelLoadError as e:
            return str(e)


# ---------------------------------------------------------------------------- loading a served model


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


def load_forecaster(model_uri: str, tracking_uri: str) -> tuple[Any, dict[str, Any]]:
    """(LSTMForecaster, extra) inside a registered tsforecast pyfunc at ``model_uri``."""
    with tracking(tracking_uri):
        loaded = load_pyfunc(model_uri, tracking_uri)
    inner = loaded.unwrap_python_model()
    model, extra = getattr(inner, "model", None), getattr(inner, "extra", None)
    if model is None or not isinstance(extra, dict):
        raise ModelLoadError(f"model {model_uri!r} is a {type(inner).__name__}, not a tsforecast forecaster")
    return model, extra


__all__ = ["default_tracking_uri", "load_forecaster", "load_pyfunc", "tracking"]


# ---------------------------------------------------------------------------- the run


def _input_example(paths: Paths, cand: Candidate) -> Any:
    import pandas as pd

    from tsforecast.pyfunc import serving_example

    spec_cols = [cand.extra["timestamp_column"], *cand.extra["columns"]]
    frame = pd.read_parquet(paths.validated / "data.parquet", columns=spec_cols)
    return frame, serving_example(frame, cand.extra, cand.model.args.input_size)


def _signature(cand: Candidate, example: Any) -> Any:
    from tsforecast.pyfunc import model_signature

    return model_signature(cand.extra)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("tsforecast", "mlflow", "torch", "pandas", "numpy", "pyarrow"):
        try:
            reqs.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _log_artifacts(paths: Paths, config: dict[str, Any]) -> None:
    """Plots, metrics, the validation report, the resolved config, dvc.lock, the model's metadata."""
    import mlflow

    for p in sorted(paths.plots.glob("*")):
        if p.is_file() and p.suffix in (".png", ".json"):
            mlflow.log_artifact(str(p), "plots")
    for p in sorted(paths.metrics.glob("*.json")):
        mlflow.log_artifact(str(p), "metrics")
    if (paths.reports / "validation.json").is_file():
        mlflow.log_artifact(str(paths.reports / "validation.json"), "validation")
    if (paths.reports / "data_docs").is_dir():
        mlflow.log_artifacts(str(paths.reports / "data_docs"), "validation/data_docs")
    mlflow.log_dict(config, "config/params.resolved.json")
    for p in (paths.params, paths.root / "dvc.lock"):
        if p.is_file():
            mlflow.log_artifact(str(p), "config")
    for name in ("config.json", "meta.json", "scaler.json"):
        if (paths.models / name).is_file():
            mlflow.log_artifact(str(paths.models / name), "config/model")


def _work_started_ms(paths: Paths, train_metrics: dict[str, Any]) -> int | None:
    """When training began (ms since the epoch): ``models/model.pt``'s mtime less ``train_seconds``.

    None (MLflow then stamps the run's start itself) when either is missing or the start is not
    within RUN_SPAN_MAX_S before now (a model trained long ago). After ``dvc checkout`` the mtime
    is the checkout's, so the span is then approximate.
    """
    seconds = train_metrics.get("train_seconds")
    model = paths.models / "model.pt"
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not model.is_file():
        return None
    start = model.stat().st_mtime - float(seconds)
    if not 0 <= time.time() - start <= RUN_SPAN_MAX_S:
        return None
    return int(start * 1000)


def _create_run_at(
    client: Any, experiment_id: str, run_name: str, tags: dict[str, str], start_ms: int | None
) -> str:
    """Create a run that starts at ``start_ms`` with the tags ``mlflow.start_run`` would set."""
    from mlflow.tracking.context import registry as context_registry

    resolved = context_registry.resolve_tags({**tags, "mlflow.runName": run_name})  # user, source, git
    run = client.create_run(experiment_id, start_time=start_ms, tags=resolved, run_name=run_name)
    return run.info.run_id


def log_run(
    client: Any,
    paths: Paths,
    cand: Candidate,
    experiment_id: str,
    tags: dict[str, str],
    params: dict[str, dict[str, Any]],
    target: str,
) -> tuple[str, str]:
    """Create the pipeline's MLflow run (params, per-epoch losses, metrics, artifacts, the model).

    Returns (run_id, logged model URI). ``params`` are the resolved sections to log.
    """
    import mlflow
    import mlflow.data
    from mlflow.entities import Metric, Param

    from tsforecast.lineage import flat_params
    from tsforecast.pyfunc import ARTIFACT_KEY, write_model_code

    train_metrics = (
        read_json(paths.metrics / "train.json") if (paths.metrics / "train.json").is_file() else {}
    )
    history = read_json(paths.plots / "loss.json") if (paths.plots / "loss.json").is_file() else []
    frame, example = _input_example(paths, cand)
    a = cand.model.args
    run_name = f"{a.cell}-h{a.hidden_size}x{a.num_layers}-L{a.input_size}-H{a.horizon}-{cand.fingerprint[:8]}"
    run_tags = {k: v for k, v in tags.items() if k != "mlflow.note.content"}
    # The run spans the work it records: it starts when training started (MLflow would stamp the
    # moment logging begins, a second before it ends) and ends when registration ends (start_run's
    # exit). MlflowClient.create_run takes a start_time; start_run(run_id=...) then resumes it.
    started = _work_started_ms(paths, train_metrics)
    with (
        warnings.catch_warnings(),
        mlflow.start_run(
            run_id=_create_run_at(client, experiment_id, run_name, run_tags, started),
            description=tags["mlflow.note.content"],
        ) as run,
    ):
        # MLflow's own pandas calls warn about pandas 4 changes: not ours to fix, only noise
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"mlflow\.")
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        keys = (
            ("train_loss", "train_loss"),
            ("val_loss", "val_loss"),
            ("lr", "lr"),
            ("epoch_seconds", "seconds"),
        )
        # each epoch's metrics are stamped when that epoch ended, so the UI's wall-time axis is real
        ends = np.cumsum([float(row.get("seconds", 0.0)) for row in history]) * 1000.0
        stamps = [int(started + e) if started is not None else now for e in ends]
        per_epoch = [
            Metric(key, float(row[src]), stamp, int(row["epoch"]))
            for row, stamp in zip(history, stamps, strict=True)
            for key, src in keys
            if src in row
        ]
        final = [Metric(k, v, now, 0) for k, v in flat_metrics(cand.metrics, train_metrics).items()]
        logged = [Param(k, v) for k, v in flat_params(params).items()]
        client.log_batch(run_id, metrics=per_epoch + final, params=logged)
        if "device" in train_metrics:
            mlflow.set_tag("train.device", str(train_metrics["device"]))

        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": both are local
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                frame,
                source=str(paths.validated / "data.parquet"),
                name=f"{target} ({tags.get('data.source', 'validated')})",
                targets=target,
            )
        mlflow.log_input(dataset, context="training")
        _log_artifacts(paths, params)

        with tempfile.TemporaryDirectory(prefix="tsforecast-model-code-") as tmp:
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(write_model_code(Path(tmp))),  # from code: nothing is pickled
                artifacts={ARTIFACT_KEY: str(paths.models / "model.pt")},
                signature=_signature(cand, example),
                input_example=example,
                pip_requirements=_pip_requirements(),
                metadata={
                    "tsforecast": {
                        k: v for k, v in cand.extra.items() if k not in ("config", "scaler", "intervals")
                    }
                },
            )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return run_id, info.model_uri


__all__ = [
    "HTTP_ENV_DEFAULTS",
    "default_tracking_uri",
    "download_model",
    "ensure_experiment",
    "find_logged_run",
    "find_version",
    "is_transient",
    "local_store",
    "log_run",
    "mlflow_context",
    "store_lock",
    "tracking",
    "tracking_uri",
    "with_retries",
]
