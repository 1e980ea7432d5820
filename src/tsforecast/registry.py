"""Stage ``register``: record the pipeline run in MLflow, register the model, run the champion gate.

One MLflow run per pipeline run, created here after the fact: every param, the per-epoch
losses, the test metrics with the baselines', the plots, the validation report, the
resolved config and ``dvc.lock``, the validated data set as a dataset input, and tags that
lead back to the exact code and data (``git checkout <commit> && dvc checkout``). The
model is logged as a pyfunc (:class:`tsforecast.pyfunc.TsForecastPyfunc`) and becomes a
new version of ``register.model_name``.

The gate: the ``register.alias`` alias (``champion``) moves to the new version only when
its test ``mse_scaled`` beats the repeat-last baseline's and the current champion's on
the same test windows (the champion is re-scored when the data changed); otherwise the
version gets ``register.challenger_alias`` and the log says why, with both numbers.

Safe to rerun and to run twice at once:

* idempotent: the run and the version carry a fingerprint of the model, its metrics and
  the params; a rerun (after a failure half way, or on a fresh clone) finds them and
  finishes the alias step instead of registering a duplicate;
* an unreachable server is retried ``register.max_retries`` times with exponential
  back-off, then fails with a :class:`RegistryError` naming the URI;
* concurrent registrations: a file lock beside a local (sqlite) store serialises them;
  against a remote server the gate is a compare-and-set loop that re-reads the alias
  after moving it and corrects it when a better version won meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import numpy as np
import torch
import yaml
from torch import nn

from tsforecast.config import Config, RegisterConfig
from tsforecast.errors import DataError, ModelLoadError, RegistryError
from tsforecast.io import read_json, write_json
from tsforecast.model import LSTMForecaster, load_model
from tsforecast.paths import Paths
from tsforecast.windowing import Prepared, StandardScaler, load_prepared

log = logging.getLogger(__name__)

T = TypeVar("T")

FINGERPRINT_TAG = "tsforecast.fingerprint"
DATA_HASH_TAG = "tsforecast.test_data_hash"  # sha256 of data/prepared/: "the same test windows"
MSE_TAG = "tsforecast.mse_scaled"
RESCORED_TAG = "tsforecast.mse_scaled_on."  # + data hash: a version re-scored on other test data
BASELINE_TAG = "tsforecast.baseline_repeat_last_mse_scaled"
MODEL_URI_TAG = "tsforecast.logged_model_uri"
GATE_TAG = "tsforecast.gate"
REPRODUCE_TAG = "tsforecast.reproduce"
MODEL_ARTIFACT = "model"
REGISTERED_FILE = "registered.json"
# MLflow retries a failed HTTP request 7 times with a doubling back-off (minutes) by default;
# the stage retries on its own (register.max_retries), so MLflow's are kept short.
HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
LOCK_TIMEOUT_S = 600.0
RUN_SPAN_MAX_S = 24 * 3600.0  # an MLflow run starts when training did, if that is within a day
SCORE_RTOL = 1e-4  # evaluate.json vs a re-score of model.pt: float noise across machines only


@dataclass(frozen=True)
class RegisterResult:
    """What ``reports/registered.json`` holds (contract keys first)."""

    model_name: str
    version: int
    aliases: list[str]
    champion: bool
    reason: str
    run_id: str
    experiment_id: str
    tracking_uri: str
    model_uri: str
    mse_scaled: float
    champion_version: int | None
    champion_mse_scaled: float | None
    previous_champion_version: int | None
    previous_champion_mse_scaled: float | None
    baseline_repeat_last_mse_scaled: float
    fingerprint: str
    reused: bool  # the version existed already (a rerun): nothing new was registered


@dataclass(frozen=True)
class Candidate:
    """The stage outputs that register reads, checked against each other."""

    metrics: dict[str, Any]  # metrics/evaluate.json
    mse_scaled: float
    baseline_mse_scaled: float  # repeat_last on the same windows
    seasonal_period: int
    data_hash: str  # of data/prepared/
    fingerprint: str
    model: LSTMForecaster
    extra: dict[str, Any]
    prepared: Prepared


# ---------------------------------------------------------------------------- edges: files


def tracking_uri(paths: Paths) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a real server), else ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db}"


def local_store(uri: str) -> Path | None:
    """The file or folder of a local store (sqlite, file:), None for a server."""
    if uri.startswith("sqlite:///"):
        rest = unquote(uri[len("sqlite:///") :].split("?", 1)[0])
        return Path(rest) if Path(rest).is_absolute() else Path.cwd() / rest
    parsed = urlparse(uri)
    if parsed.scheme == "file" or (parsed.scheme == "" and uri.startswith(("/", "."))):
        return Path(unquote(parsed.path)).resolve()
    return None


def hash_files(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda f=fh: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _dir_stats(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def dvc_hashes(paths: Paths, outs: tuple[str, ...] = ("data/raw", "data/validated")) -> dict[str, Any]:
    """DVC's md5 of each out from dvc.lock, or a sha256 of the files where the lock lacks it.

    A lock entry whose file count or size no longer matches the folder is stale (a stage
    ran outside DVC) and is not used.
    """
    lock: dict[str, Any] = {}
    lock_path = paths.root / "dvc.lock"
    if lock_path.is_file():
        with contextlib.suppress(yaml.YAMLError, OSError):
            lock = yaml.safe_load(lock_path.read_text()) or {}
    entries: dict[str, dict[str, Any]] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if isinstance(out, dict) and "path" in out:
                entries[out["path"]] = out
    result: dict[str, Any] = {}
    for rel in outs:
        folder = paths.root / rel
        entry = entries.get(rel)
        if entry and entry.get("md5") and folder.is_dir():
            nfiles, size = _dir_stats(folder)
            if entry.get("nfiles", nfiles) == nfiles and entry.get("size", size) == size:
                result[rel] = {"hash": str(entry["md5"]), "source": "dvc.lock"}
                continue
            log.warning("dvc.lock's entry for %s does not match the folder; hashing the files", rel)
        if folder.is_dir():
            result[rel] = {"hash": "sha256:" + hash_files(folder), "source": "computed"}
        else:
            result[rel] = {"hash": "missing", "source": "missing"}
    return result


def git_state(root: Path) -> tuple[str, str]:
    """(commit, dirty) of the checkout at ``root``; ``unknown`` outside git."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown", "unknown"
    status = git("status", "--porcelain")
    dirty = "unknown" if status is None else str(bool(status.strip())).lower()
    return commit.strip(), dirty


def _fingerprint(cfg: Config, model_path: Path, metrics_path: Path) -> str:
    """Identity of one registration: the model bytes, its metrics and the params that made them."""
    h = hashlib.sha256()
    h.update(hashlib.sha256(model_path.read_bytes()).digest())
    h.update(hashlib.sha256(metrics_path.read_bytes()).digest())
    h.update(cfg.section_hash("data", "split", "window", "model", "train").encode())
    return h.hexdigest()[:24]


def read_candidate(cfg: Config, paths: Paths) -> Candidate:
    """Read and cross-check models/, metrics/evaluate.json and data/prepared/.

    Refuses (nothing is registered, no alias moves) when an earlier stage did not finish:
    the model or its metrics are missing, or the metrics do not describe this model on
    this data (evaluate did not run after the last train or window).
    """
    from tsforecast.evaluate import score

    model_path = paths.models / "model.pt"
    metrics_path = paths.metrics / "evaluate.json"
    stop = "nothing was registered and the champion alias did not move - run `dvc repro`"
    if not model_path.is_file():
        raise RegistryError(f"{model_path} not found: the train stage has not run (or failed); {stop}")
    if not metrics_path.is_file():
        raise RegistryError(
            f"{metrics_path} not found: the evaluate stage has not run for {model_path} (or failed); {stop}"
        )
    try:
        metrics = read_json(metrics_path)
        mse = float(metrics["mse_scaled"])
        baseline = float(metrics["baselines"]["repeat_last"]["mse_scaled"])
    except (ValueError, KeyError, TypeError) as e:
        raise RegistryError(
            f"{metrics_path}: not the evaluate stage's metrics ({type(e).__name__}: {e}); {stop}"
        ) from None
    model, extra = load_model(model_path)
    prepared = load_prepared(paths.prepared)
    period = int(metrics.get("seasonal_period", cfg.evaluate.seasonal_period))
    try:
        rescored = score(model, prepared, min(period, prepared.input_size)).metrics
    except DataError as e:
        raise RegistryError(f"{model_path} does not fit data/prepared/ ({e}); {stop}") from None
    same = math.isclose(rescored["mse_scaled"], mse, rel_tol=SCORE_RTOL, abs_tol=1e-12) and int(
        rescored["n_windows"]
    ) == int(metrics.get("n_windows", -1))
    if not same:
        older = metrics_path.stat().st_mtime < model_path.stat().st_mtime
        raise RegistryError(
            f"{metrics_path} (mse_scaled {mse:.6g} over {metrics.get('n_windows')} windows) does not "
            f"describe {model_path} on data/prepared/ (re-scored: {rescored['mse_scaled']:.6g} over "
            f"{rescored['n_windows']} windows){'; it is older than the model' if older else ''}: "
            f"evaluate did not run after the last train or window; {stop}"
        )
    return Candidate(
        metrics=metrics,
        mse_scaled=mse,
        baseline_mse_scaled=baseline,
        seasonal_period=period,
        data_hash=hash_files(paths.prepared)[:24],
        fingerprint=_fingerprint(cfg, model_path, metrics_path),
        model=model,
        extra=extra,
        prepared=prepared,
    )


# ---------------------------------------------------------------------------- pure helpers


def flat_metrics(evaluate: dict[str, Any], train: dict[str, Any]) -> dict[str, float]:
    """``test_mse_scaled``, ``baseline_repeat_last_mse_scaled``, ``train_best_val_loss``, ..."""

    def number(v: Any) -> float | None:
        if isinstance(v, bool):
            return float(v)
        return float(v) if isinstance(v, int | float) else None

    out: dict[str, float] = {}
    for key, value in evaluate.items():
        if key == "baselines":
            for name, scores in value.items():
                for k, v in scores.items():
                    if (n := number(v)) is not None:
                        out[f"baseline_{name}_{k}"] = n
        elif key == "beats":
            for name, v in value.items():
                out[f"test_beats_{name}"] = float(bool(v))
        elif (n := number(value)) is not None:
            out[f"test_{key}"] = n
    for key, value in train.items():
        if (n := number(value)) is not None:
            out[key if key.startswith("train_") else f"train_{key}"] = n
    return out


def _param_value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


class _OnScale(nn.Module):
    """A model trained with scaler ``own``, run on data scaled with ``data``'s scaler.

    Inputs are mapped to ``own``'s scale and forecasts back to ``data``'s, so a champion
    trained on older data is scored on the current windows in the current scale.
    """

    def __init__(self, model: LSTMForecaster, own: StandardScaler, data: StandardScaler) -> None:
        super().__init__()
        self.model = model
        self.args = model.args
        own_mean, own_std = np.asarray(own.mean), np.asarray(own.std)
        data_mean, data_std = np.asarray(data.mean), np.asarray(data.std)
        self.register_buffer("a", torch.tensor(data_std / own_std, dtype=torch.float32))  # (C,)
        self.register_buffer("b", torch.tensor((data_mean - own_mean) / own_std, dtype=torch.float32))
        self.out_a = float(own_std[0] / data_std[0])
        self.out_b = float((own_mean[0] - data_mean[0]) / data_std[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x * self.a + self.b)  # (B, L, C) on own's scale -> (B, H)
        return y * self.out_a + self.out_b  # back on the data's scale


def score_on(model: LSTMForecaster, extra: dict[str, Any], cand: Candidate) -> tuple[float | None, str]:
    """``model``'s test mse_scaled on the candidate's windows, or (None, why not)."""
    from tsforecast.evaluate import score

    columns = list(extra.get("columns") or [])
    if columns != list(cand.prepared.columns):
        return None, f"it was trained on columns {columns}, the data has {list(cand.prepared.columns)}"
    a, p = model.args, cand.prepared
    if (a.input_size, a.horizon) != (p.input_size, p.horizon):
        return None, (
            f"it has (input_size, horizon)={(a.input_size, a.horizon)}, the test windows "
            f"{(p.input_size, p.horizon)}"
        )
    own = StandardScaler.from_dict(extra["scaler"]) if "scaler" in extra else p.scaler
    wrapped = _OnScale(model, own, p.scaler).eval()
    metrics = score(wrapped, p, min(cand.seasonal_period, p.input_size)).metrics  # type: ignore[arg-type]
    return float(metrics["mse_scaled"]), ""


# ---------------------------------------------------------------------------- MLflow edges


def _first_line(e: BaseException) -> str:
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
    text = str(e)
    if "database is locked" in text:  # sqlite busy beyond its timeout
        return True
    if isinstance(e, MlflowException):
        if e.error_code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"):
            return True
        markers = (
            "Max retries exceeded",
            "Connection refused",
            "Connection aborted",
            "timed out",
            "ConnectionError",
        )
        return "API request to" in text and any(m in text for m in markers)
    return False


def with_retries(fn: Callable[[], T], rc: RegisterConfig, uri: str, what: str = "register") -> T:
    """Run ``fn``; retry transient failures ``rc.max_retries`` times with doubling back-off."""
    from mlflow.exceptions import MlflowException

    attempts = rc.max_retries + 1
    t0 = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                if isinstance(e, MlflowException):
                    raise RegistryError(f"MLflow at {uri} refused to {what}: {_first_line(e)}") from None
                raise
            if attempt == attempts:
                raise RegistryError(
                    f"MLflow at {uri} is unreachable: {attempts} attempt(s) over "
                    f"{time.monotonic() - t0:.0f} s failed ({_first_line(e)[:200]}); the model was not "
                    "registered or its alias step did not finish. Start the server (or unset "
                    "MLFLOW_TRACKING_URI to use the local sqlite store), then rerun `dvc repro`: "
                    "it finishes the registration without a duplicate version"
                ) from None
            wait = min(rc.retry_backoff_s * 2 ** (attempt - 1), 60.0)
            log.warning(
                "MLflow at %s: attempt %d/%d failed (%s); retrying in %.1f s",
                uri,
                attempt,
                attempts,
                _first_line(e)[:160],
                wait,
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def mlflow_context(uri: str) -> Iterator[None]:
    """Tracking + registry URI set, MLflow's HTTP retries kept short; all restored after."""
    import mlflow  # noqa: F401  (first: importing it resets its logger's level)

    from tsforecast.predict import tracking

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


def _ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
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


def _find_version(client: Any, name: str, fingerprint: str) -> Any | None:
    """The version registered earlier for this fingerprint (a rerun), if any."""
    found = client.search_model_versions(
        f"name = '{_quote(name)}' and tags.`{FINGERPRINT_TAG}` = '{fingerprint}'", max_results=10
    )
    return min(found, key=lambda mv: int(mv.version)) if found else None


def _find_logged_run(client: Any, experiment_id: str, fingerprint: str) -> str | None:
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


def _alias_version(client: Any, name: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _input_example(paths: Paths, cand: Candidate) -> Any:
    import pandas as pd

    spec_cols = [cand.extra["timestamp_column"], *cand.extra["columns"]]
    frame = pd.read_parquet(paths.validated / "data.parquet", columns=spec_cols)
    example = frame.iloc[-cand.model.args.input_size :].reset_index(drop=True)
    for c in cand.extra["columns"]:
        example[c] = example[c].astype("float64")
    return frame, example


def _signature(cand: Candidate, example: Any) -> Any:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    ts_col = cand.extra["timestamp_column"]
    naive = not isinstance(example[ts_col].dtype, pd.DatetimeTZDtype)
    # MLflow's datetime type is time-zone naive; zoned timestamps travel as ISO 8601 strings
    ts_type = DataType.datetime if naive else DataType.string
    inputs = Schema([ColSpec(ts_type, ts_col), *[ColSpec(DataType.double, c) for c in cand.extra["columns"]]])
    outputs = Schema([ColSpec(ts_type, "timestamp"), ColSpec(DataType.double, "forecast")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("tsforecast", "mlflow", "torch", "pandas", "numpy", "pyarrow"):
        try:
            reqs.append(f"{dist}=={version(dist).split('+')[0]}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _describe(cfg: Config, cand: Candidate, commit: str, dirty: str) -> str:
    m, a = cand.metrics, cand.model.args
    sn = m.get("baselines", {}).get("seasonal_naive", {}).get("mse_scaled")
    lines = [
        f"{a.cell.upper()} forecaster ({a.hidden_size} hidden x {a.num_layers} layers), "
        f"{a.input_size} steps in, {a.horizon} out, every {cand.extra.get('freq')}.",
        "",
        f"Test mse_scaled {cand.mse_scaled:.5g} over {m.get('n_windows')} windows "
        f"(repeat_last {cand.baseline_mse_scaled:.5g}"
        + (f", seasonal_naive {sn:.5g}" if sn is not None else "")
        + f"); test data {cand.data_hash}.",
        "",
        f"Reproduce: `git checkout {commit} && dvc checkout` (then `dvc repro` re-runs nothing).",
    ]
    if dirty == "true":
        lines.append("Note: the working tree had uncommitted changes when this was registered.")
    return "\n".join(lines)


def _model_description(cfg: Config) -> str:
    rc = cfg.register
    return (
        f"Forecasts of `{cfg.data.target}` by tsforecast's LSTM pipeline (`dvc repro`). Every "
        f"evaluated model is a version; the `{rc.alias}` alias moves only to a version whose test "
        "mse_scaled beats the repeat_last baseline and the current champion on the same test windows; "
        f"the others get `{rc.challenger_alias}`. Load: "
        f"`mlflow.pyfunc.load_model('models:/{rc.model_name}@{rc.alias}')`."
    )


def _log_run(
    client: Any, cfg: Config, paths: Paths, cand: Candidate, experiment_id: str, tags: dict[str, str]
) -> tuple[str, str]:
    """Create the pipeline's MLflow run; returns (run_id, logged model URI)."""
    import mlflow
    import mlflow.data
    from mlflow.entities import Metric, Param

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
        # each epoch's metrics are stamped when that epoch ended, so the UI's wall-time axis is real
        ends = np.cumsum([float(row.get("seconds", 0.0)) for row in history]) * 1000.0
        stamps = [int(started + e) if started is not None else now for e in ends]
        per_epoch = [
            Metric(key, float(row[src]), stamp, int(row["epoch"]))
            for row, stamp in zip(history, stamps, strict=True)
            for key, src in (
                ("train_loss", "train_loss"),
                ("val_loss", "val_loss"),
                ("lr", "lr"),
                ("epoch_seconds", "seconds"),
            )
            if src in row
        ]
        final = [Metric(k, v, now, 0) for k, v in flat_metrics(cand.metrics, train_metrics).items()]
        params = [Param(k, _param_value(v)) for k, v in cfg.flat().items()]
        client.log_batch(run_id, metrics=per_epoch + final, params=params)
        if "device" in train_metrics:
            mlflow.set_tag("train.device", str(train_metrics["device"]))

        with warnings.catch_warnings():  # "source can be interpreted in multiple ways": both are local
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_pandas(
                frame,
                source=str(paths.validated / "data.parquet"),
                name=f"{cfg.data.target} ({tags.get('data.source', 'validated')})",
                targets=cfg.data.target,
            )
        mlflow.log_input(dataset, context="training")

        for p in sorted(paths.plots.glob("*")):
            if p.is_file() and p.suffix in (".png", ".json"):
                mlflow.log_artifact(str(p), "plots")
        for p in sorted(paths.metrics.glob("*.json")):
            mlflow.log_artifact(str(p), "metrics")
        if (paths.reports / "validation.json").is_file():
            mlflow.log_artifact(str(paths.reports / "validation.json"), "validation")
        if (paths.reports / "data_docs").is_dir():
            mlflow.log_artifacts(str(paths.reports / "data_docs"), "validation/data_docs")
        mlflow.log_dict(cfg.model_dump(mode="json"), "config/params.resolved.json")
        for p in (paths.params, paths.root / "dvc.lock"):
            if p.is_file():
                mlflow.log_artifact(str(p), "config")
        for name in ("config.json", "meta.json", "scaler.json"):
            if (paths.models / name).is_file():
                mlflow.log_artifact(str(paths.models / name), "config/model")

        with tempfile.TemporaryDirectory(prefix="tsforecast-model-code-") as tmp:
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(write_model_code(Path(tmp))),  # from code: nothing is pickled
                artifacts={ARTIFACT_KEY: str(paths.models / "model.pt")},
                signature=_signature(cand, example),
                input_example=example,
                pip_requirements=_pip_requirements(),
                metadata={
                    "tsforecast": {k: v for k, v in cand.extra.items() if k not in ("config", "scaler")}
                },
            )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return run_id, info.model_uri


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


def _version_tags(cand: Candidate, tags: dict[str, str]) -> dict[str, str]:
    keep = (
        "git.commit",
        "git.dirty",
        "params.hash",
        "data.raw.hash",
        "data.validated.hash",
        "data.hash_source",
        "data.source",
        REPRODUCE_TAG,
    )
    out = {k: tags[k] for k in keep if k in tags}
    out.update(
        {
            FINGERPRINT_TAG: cand.fingerprint,
            DATA_HASH_TAG: cand.data_hash,
            MSE_TAG: repr(cand.mse_scaled),
            BASELINE_TAG: repr(cand.baseline_mse_scaled),
        }
    )
    for key in ("mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows"):
        if key in cand.metrics:
            out[f"tsforecast.{key}"] = repr(cand.metrics[key])
    return out


def _lineage_tags(cfg: Config, paths: Paths, cand: Candidate) -> dict[str, str]:
    commit, dirty = git_state(paths.root)
    hashes = dvc_hashes(paths)
    raw_meta = read_json(paths.raw / "meta.json") if (paths.raw / "meta.json").is_file() else {}
    sources = sorted({h["source"] for h in hashes.values()})
    tags = {
        "git.commit": commit,
        "git.dirty": dirty,
        "params.hash": cfg.section_hash(),
        "data.raw.hash": hashes["data/raw"]["hash"],
        "data.validated.hash": hashes["data/validated"]["hash"],
        # dvc.lock: DVC's md5 (`dvc checkout` restores exactly it); computed: sha256 of the files
        "data.hash_source": sources[0] if len(sources) == 1 else ",".join(sources),
        "data.source": str(raw_meta.get("source", "unknown")),
        "data.source_sha256": str(raw_meta.get("source_sha256") or "none"),
        FINGERPRINT_TAG: cand.fingerprint,
        DATA_HASH_TAG: cand.data_hash,
        REPRODUCE_TAG: f"git checkout {commit} && dvc checkout",
        "mlflow.note.content": _describe(cfg, cand, commit, dirty),
    }
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


# ---------------------------------------------------------------------------- the gate


@dataclass
class _Gate:
    """Scores of versions on the candidate's test windows, cached for one registration."""

    client: Any
    name: str
    version: int
    cand: Candidate
    cache: dict[int, tuple[float | None, str]]

    def score(self, v: int) -> tuple[float | None, str]:
        """(mse_scaled on these test windows or None, a note on how it was obtained)."""
        if v == self.version:
            return self.cand.mse_scaled, ""
        if v not in self.cache:
            self.cache[v] = self._score(v)
        return self.cache[v]

    def _score(self, v: int) -> tuple[float | None, str]:
        import mlflow

        mv = self.client.get_model_version(self.name, str(v))
        tags = mv.tags or {}
        h = self.cand.data_hash
        if tags.get(DATA_HASH_TAG) == h and MSE_TAG in tags:
            return float(tags[MSE_TAG]), ""
        if RESCORED_TAG + h in tags:
            return float(tags[RESCORED_TAG + h]), " (re-scored on the current test windows: the data changed)"
        log.info("the data changed since v%d was registered: re-scoring it on the current test windows", v)
        with tempfile.TemporaryDirectory(prefix="tsforecast-champion-") as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{self.name}/{v}", dst_path=tmp)
            )
            found = sorted(local.rglob("model.pt"))
            if not found:
                return None, f"its artifacts hold no model.pt ({self.name} v{v} is not a tsforecast model)"
            try:
                model, extra = load_model(found[0])
            except ModelLoadError as e:
                return None, str(e)
        mse, why = score_on(model, extra, self.cand)
        if mse is None:
            return None, why
        self.client.set_model_version_tag(self.name, str(v), RESCORED_TAG + h, repr(mse))
        return mse, " (re-scored on the current test windows: the data changed)"

    def decide(self, holder: int | None) -> tuple[bool, str]:
        """Should the candidate hold the alias rather than ``holder``? And why, with numbers."""
        c, b = self.cand.mse_scaled, self.cand.baseline_mse_scaled
        me = f"v{self.version}: test mse_scaled {c:.5g}"
        if holder == self.version:
            return True, f"champion: {me} already holds the alias"
        if not c < b:
            return False, (
                f"challenger: {me} does not beat the repeat_last baseline's {b:.5g} on the same test "
                "windows; a model that does not beat repeat_last is never champion"
            )
        if holder is None:
            return True, f"champion: {me} beats the repeat_last baseline's {b:.5g}; there was no champion yet"
        h, note = self.score(holder)
        if h is None:
            return True, (
                f"champion: {me} beats the repeat_last baseline's {b:.5g}; champion v{holder} cannot be "
                f"scored on these test windows ({note}), so it is replaced"
            )
        if c < h:
            return True, (
                f"champion: {me} beats champion v{holder}'s {h:.5g}{note} and the repeat_last "
                f"baseline's {b:.5g} on the same test windows"
            )
        return (
            False,
            f"challenger: {me} does not beat champion v{holder}'s {h:.5g}{note} on the same test windows",
        )


def champion_gate(gate: _Gate, rc: RegisterConfig, locked: bool) -> tuple[bool, str, int | None]:
    """Move ``rc.alias`` to ``version`` if it wins; returns (champion, reason, previous holder).

    Compare-and-set: the holder is re-read just before the alias moves, and the decision
    is redone if it changed. Without a lock (a remote server) the alias is re-read after
    a short pause until it has been seen stable twice, and corrected if a concurrent
    registration moved it to a worse version.
    """
    client, name, version = gate.client, gate.name, gate.version
    holder = _alias_version(client, name, rc.alias)
    previous = holder
    won, reason = False, ""
    for _ in range(20):
        won, reason = gate.decide(holder)
        if not won or holder == version:
            break
        now = _alias_version(client, name, rc.alias)
        if now != holder:  # someone moved it while we compared: decide again against them
            holder = now
            continue
        client.set_registered_model_alias(name, rc.alias, str(version))
        break
    stable, rounds = 0, 0
    while not locked and stable < 2 and rounds < 12:
        rounds += 1
        time.sleep(random.uniform(0.2, 0.6))
        now = _alias_version(client, name, rc.alias)
        expected = version if won else holder
        if now == expected:
            stable += 1
            continue
        stable, holder = 0, now
        won, reason = gate.decide(holder)
        if won and holder != version:
            log.info(
                "the %s alias moved to v%s meanwhile, but v%d is better: moving it back",
                rc.alias,
                now,
                version,
            )
            client.set_registered_model_alias(name, rc.alias, str(version))
    if won:
        if _alias_version(client, name, rc.challenger_alias) == version:
            client.delete_registered_model_alias(name, rc.challenger_alias)
    else:
        client.set_registered_model_alias(name, rc.challenger_alias, str(version))
    return won, reason, previous


# ---------------------------------------------------------------------------- the stage


def _register_once(cfg: Config, paths: Paths, cand: Candidate, uri: str, locked: bool) -> RegisterResult:
    import mlflow
    from mlflow import MlflowClient

    rc = cfg.register
    client = MlflowClient(tracking_uri=uri, registry_uri=mlflow.get_registry_uri())
    store = local_store(uri)
    # a sqlite store keeps artifacts beside it (<root>/mlartifacts by default); a server decides itself
    artifacts = (
        (store.parent / paths.mlflow_artifacts.name).as_uri() if uri.startswith("sqlite:") and store else None
    )
    experiment_id = _ensure_experiment(client, rc.experiment, artifacts)
    existing = _find_version(client, rc.model_name, cand.fingerprint)
    if existing is not None:
        mv, reused = existing, True
        log.info(
            "v%s of %s already holds this model (a rerun): finishing its alias step",
            mv.version,
            rc.model_name,
        )
    else:
        tags = _lineage_tags(cfg, paths, cand)
        run_id = _find_logged_run(client, experiment_id, cand.fingerprint)
        if run_id is None:
            run_id, model_uri = _log_run(client, cfg, paths, cand, experiment_id, tags)
        else:
            model_uri = client.get_run(run_id).data.tags[MODEL_URI_TAG]
            log.info("reusing MLflow run %s logged by an interrupted registration", run_id)
        mv = mlflow.register_model(model_uri, rc.model_name, tags=_version_tags(cand, tags))
        client.update_model_version(rc.model_name, mv.version, description=tags["mlflow.note.content"])
        if not client.get_registered_model(rc.model_name).description:
            client.update_registered_model(rc.model_name, description=_model_description(cfg))
        reused = False
    version = int(mv.version)
    gate = _Gate(client, rc.model_name, version, cand, {})
    won, reason, previous = champion_gate(gate, rc, locked)
    client.set_model_version_tag(rc.model_name, str(version), GATE_TAG, reason)
    with contextlib.suppress(Exception):  # the run may be gone (deleted by a user): the tag is a nicety
        client.set_tag(mv.run_id, GATE_TAG, reason)
    champion_version = _alias_version(client, rc.model_name, rc.alias)
    champion_mse = gate.score(champion_version)[0] if champion_version is not None else None
    previous_mse = gate.score(previous)[0] if previous is not None and previous != version else None
    aliases = sorted(client.get_model_version(rc.model_name, str(version)).aliases or [])
    run = client.get_run(mv.run_id) if mv.run_id else None
    return RegisterResult(
        model_name=rc.model_name,
        version=version,
        aliases=aliases,
        champion=won,
        reason=reason,
        run_id=mv.run_id or "",
        experiment_id=run.info.experiment_id if run else experiment_id,
        tracking_uri=uri,
        model_uri=f"models:/{rc.model_name}/{version}",
        mse_scaled=cand.mse_scaled,
        champion_version=champion_version,
        champion_mse_scaled=champion_mse,
        previous_champion_version=previous if previous != version else None,
        previous_champion_mse_scaled=previous_mse,
        baseline_repeat_last_mse_scaled=cand.baseline_mse_scaled,
        fingerprint=cand.fingerprint,
        reused=reused,
    )


def run_register(cfg: Config, paths: Paths) -> RegisterResult:
    """Log the run, register a version of ``register.model_name``, move the champion alias if it wins."""
    cand = read_candidate(cfg, paths)  # edge: read + cross-check the stage outputs
    uri = tracking_uri(paths)
    with mlflow_context(uri), store_lock(uri) as locked:
        result = with_retries(lambda: _register_once(cfg, paths, cand, uri, locked), cfg.register, uri)
    write_json(paths.reports / REGISTERED_FILE, asdict(result))  # edge: atomic write
    log.info("%s v%d: %s", result.model_name, result.version, result.reason)
    return result


__all__ = ["RegisterResult", "champion_gate", "read_candidate", "run_register", "tracking_uri"]
