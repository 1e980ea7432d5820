"""The MLflow edge: where the store is, retries, lookups, loading a served model.

Logging the pipeline run is :mod:`tsforecast.registry.runlog`; the register stage composes both
(:mod:`tsforecast.registry.register`).

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from tsforecast.errors import ModelLoadError, RegistryError, TransientError
from tsforecast.paths import Paths
from tsforecast.registry.types import FINGERPRINT_TAG, MODEL_URI_TAG
from tsforecast.training.card import ModelCard

log = logging.getLogger(__name__)

T = TypeVar("T")

# One retry layer: ours. MLflow's HTTP client would retry 7 times with minutes of back-off.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
LOCK_TIMEOUT_S = 600.0
MAX_BACKOFF_S = 60.0

# ---------------------------------------------------------------------------- where the store is


def tracking_uri(paths: Paths) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a real server), else ``sqlite:///<root>/mlflow.db``.

    ``<root>`` is the user's repo also when a DVC experiment runs in a temporary copy of it
    (``dvc exp run --temp``, ``dvc queue start``): :func:`tsforecast.paths.user_root`.
    """
    from tsforecast.paths import user_root

    store = user_root(paths.root) / paths.mlflow_db.name
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store}"


def default_tracking_uri(paths: Paths | None = None) -> str:
    """:func:`tracking_uri` of ``paths`` (default: the repo around the working directory)."""
    return tracking_uri(paths or Paths.from_root())


def registered_here(paths: Paths) -> dict[str, Any] | None:
    """``reports/registered.json`` when it names this repo's store, else None.

    The file is in git (so a teammate's clone is clean in ``dvc status``), but the registry it
    names lives in the store of the machine that wrote it: a clone, or a copy of the repo, whose
    own store is another one treats it as "not registered here" (the local model forecasts until
    register runs here), instead of asking its store for a version it never held.
    """
    path = paths.reports / "registered.json"
    if not path.is_file():
        return None
    from tsforecast.io import read_json

    record = read_json(path)
    if not record.get("tracking_uri"):  # a record that names no store: taken as this one's
        return record
    here, there = tracking_uri(paths), str(record["tracking_uri"])
    a, b = local_store(here), local_store(there)
    same = (a is not None and b is not None and a.resolve() == b.resolve()) or (a is None and here == there)
    if not same:
        log.info(
            "reports/registered.json names the store %s, not this repo's %s: not registered here", there, here
        )
        return None
    return record


def local_store(uri: str) -> Path | None:
    """The file or folder of a local store (sqlite, file:), None for a server."""
    if uri.startswith("sqlite:///"):
        rest = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
        return Path(rest) if Path(rest).is_absolute() else Path.cwd() / rest
    parsed = urlparse(uri)
    if parsed.scheme == "file" or (parsed.scheme == "" and uri.startswith(("/", "."))):
        return Path(unquote(parsed.path)).resolve()
    return None


def _restore_env(saved: dict[str, str | None]) -> None:
    """Put environment variables back as ``saved`` had them (None: unset)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
        _restore_env(env_before)


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
        _restore_env(saved_env)


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


def download_model(name: str, version: int) -> tuple[Any, ModelCard] | str:
    """(model, its card) of a registered version's ``model.pt``, or why it cannot be loaded."""
    import mlflow

    from tsforecast.training.model import load_model

    with tempfile.TemporaryDirectory(prefix="tsforecast-champion-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        )
        found = sorted(local.rglob("model.pt"))
        if not found:
            return f"its artifacts hold no model.pt ({name} v{version} is not a tsforecast model)"
        try:
            model, extra = load_model(found[0])
            return model, ModelCard.from_extra(extra, where=f"{name} v{version}")
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
            raise TransientError(
                f"MLflow at {tracking_uri} is unreachable: {first}; try again once it answers"
            ) from None
        raise ModelLoadError(
            f"model {model_uri!r} not loadable from {tracking_uri}: {first}. "
            "Register one with `dvc repro` (or `tsforecast register`), or pass --tracking-uri"
        ) from None
    except OSError as e:
        raise ModelLoadError(f"model {model_uri!r}: {e}") from None


def load_forecaster(model_uri: str, tracking_uri: str) -> tuple[Any, ModelCard]:
    """(LSTMForecaster, its model card) inside a registered tsforecast pyfunc at ``model_uri``."""
    with tracking(tracking_uri):
        loaded = load_pyfunc(model_uri, tracking_uri)
    inner = loaded.unwrap_python_model()
    model, card = getattr(inner, "model", None), getattr(inner, "card", None)
    if model is None or not isinstance(card, ModelCard):
        raise ModelLoadError(f"model {model_uri!r} is a {type(inner).__name__}, not a tsforecast forecaster")
    return model, card


__all__ = [
    "HTTP_ENV_DEFAULTS",
    "default_tracking_uri",
    "download_model",
    "ensure_experiment",
    "find_logged_run",
    "find_version",
    "is_transient",
    "load_forecaster",
    "load_pyfunc",
    "local_store",
    "mlflow_context",
    "store_lock",
    "tracking",
    "tracking_uri",
    "with_retries",
]
