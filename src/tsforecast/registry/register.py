"""Stage ``register``: log the run, register a version, let the gate move the alias; ``promote``.

The stage composes four jobs, each its own module:

* :mod:`tsforecast.registry.lineage`: the task identity of the model and the tags leading back to
  the exact code and data (``git checkout <commit> && dvc checkout``);
* :mod:`tsforecast.registry.rescore`: is ``metrics/evaluate.json`` this model's score on this data,
  and what does the champion score on the same test windows;
* :mod:`tsforecast.registry.tracking`: the MLflow run (params, per-epoch losses, metrics, plots, the
  validation report, the dataset, the pyfunc model), the version, the one retry layer;
* :mod:`tsforecast.registry.gate`: the pure decision and its compare-and-set on the alias.

Safe to rerun and to run twice at once: the run and the version carry a fingerprint, so a
rerun finishes the alias step instead of registering a duplicate; a file lock beside a local
(sqlite) store serialises registrations, and against a server the gate is a compare-and-set.

``tsforecast promote VERSION`` moves the alias by hand: :mod:`tsforecast.registry.promote`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from tsforecast.config import DataConfig, EvaluateConfig, RegisterConfig, SplitConfig, WindowConfig
from tsforecast.dataset.panel import load_panel
from tsforecast.errors import DataError, RegistryError
from tsforecast.io import read_json, write_json
from tsforecast.paths import BY_SERIES_FILE, Paths
from tsforecast.registry.gate import Contender, Decision, Incumbent, alias_version, apply_alias, decide
from tsforecast.registry.lineage import (
    TaskIdentity,
    fingerprint,
    hash_files,
    identity_from_tags,
    lineage_tags,
    model_description,
    task_identity,
    version_tags,
)
from tsforecast.registry.rescore import rescore_mismatch, score_on
from tsforecast.registry.runlog import log_run
from tsforecast.registry.tracking import (
    download_model,
    ensure_experiment,
    find_logged_run,
    find_version,
    local_store,
    mlflow_context,
    store_lock,
    tracking_uri,
    with_retries,
)
from tsforecast.registry.types import (
    DATA_HASH_TAG,
    EXPERIMENT_ENV,
    GATE_TAG,
    MODEL_URI_TAG,
    MSE_TAG,
    REGISTERED_FILE,
    RESCORED_TAG,
    Candidate,
)
from tsforecast.training.card import ModelCard
from tsforecast.training.model import load_model

log = logging.getLogger(__name__)

STOP = "nothing was registered and the champion alias did not move - run `dvc repro`"


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
    identity: str  # short hash of this version's task identity
    identity_fields: dict[str, Any]
    champion_identity: str | None  # the identity tag of the version holding the alias
    previous_champion_version: int | None
    previous_champion_mse_scaled: float | None
    baseline_repeat_last_mse_scaled: float
    fingerprint: str
    reused: bool  # the version existed already (a rerun): nothing new was registered
    experiment: str | None  # DVC_EXP_NAME under `dvc exp run`: at most the challenger alias


# ---------------------------------------------------------------------------- edge: the stage outputs


def _read_metrics(metrics_path: Any) -> tuple[dict[str, Any], float, float, int]:
    """evaluate.json and its (mse_scaled, repeat_last mse_scaled, seasonal_period)."""
    try:
        metrics = read_json(metrics_path)
        return (
            metrics,
            float(metrics["mse_scaled"]),
            float(metrics["baselines"]["repeat_last"]["mse_scaled"]),
            int(metrics["seasonal_period"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise RegistryError(
            f"{metrics_path}: not the evaluate stage's metrics ({type(e).__name__}: {e}); {STOP}"
        ) from None


def read_candidate(data: DataConfig, window: WindowConfig, paths: Paths) -> Candidate:
    """Read and cross-check models/, metrics/evaluate.json and data/prepared/.

    Refuses (nothing is registered, no alias moves) when an earlier stage did not finish:
    the model or its metrics are missing, the model's card does not match params, or the
    metrics do not describe this model on this data (evaluate did not run after the last
    train or window).
    """
    model_path, metrics_path = paths.models / "model.pt", paths.metrics / "evaluate.json"
    if not model_path.is_file():
        raise RegistryError(f"{model_path} not found: the train stage has not run (or failed); {STOP}")
    if not metrics_path.is_file():
        raise RegistryError(
            f"{metrics_path} not found: the evaluate stage has not run for {model_path} (or failed); {STOP}"
        )
    metrics, mse, baseline, period = _read_metrics(metrics_path)
    model, extra = load_model(model_path)
    card = ModelCard.from_extra(extra, where=str(model_path))
    trained = (card.input_size, card.horizon)
    if trained != (window.input_size, window.horizon):
        raise RegistryError(
            f"{model_path} was trained for (input_size, horizon)={trained} but params say "
            f"window.input_size={window.input_size}, window.horizon={window.horizon}; {STOP}"
        )
    try:
        card.check(
            id_column=data.id_column, columns=[data.target, *data.covariates], where=str(model_path), fix=STOP
        )
    except DataError as e:
        raise RegistryError(str(e)) from None
    panel = load_panel(paths.prepared)  # one series is a panel of one
    try:  # a sample of series re-scored against by_series.parquet (every series of a small panel)
        mismatch = rescore_mismatch(model, panel, metrics, _by_series(paths), period)
    except DataError as e:
        raise RegistryError(f"{model_path} does not fit data/prepared/ ({e}); {STOP}") from None
    if mismatch is not None:
        older = metrics_path.stat().st_mtime < model_path.stat().st_mtime
        raise RegistryError(
            f"{metrics_path} does not describe {model_path} on data/prepared/ ({mismatch})"
            f"{'; it is older than the model' if older else ''}: evaluate did not run after the last "
            f"train or window; {STOP}"
        )
    data_hash = hash_files(paths.prepared)[:24]
    return Candidate(
        metrics=metrics,
        mse_scaled=mse,
        baseline_mse_scaled=baseline,
        seasonal_period=period,
        data_hash=data_hash,
        fingerprint=fingerprint(model_path, metrics_path, data_hash),
        model=model,
        card=card,
        panel=panel,
    )


def _by_series(paths: Paths) -> Any:
    """metrics/by_series.parquet (the per-series scores), or None when it is missing."""
    import pandas as pd

    path = paths.metrics / BY_SERIES_FILE
    return pd.read_parquet(path) if path.is_file() else None


def identity_of(data: DataConfig, cand: Candidate) -> TaskIdentity:
    """The candidate's task identity: params' data source, the card's columns, frequency, window and id
    column (the card matches params: :func:`read_candidate` checked it)."""
    card = cand.card
    return task_identity(
        data_path=data.path,
        target=card.target,
        covariates=card.columns[1:],
        freq=card.freq,
        horizon=card.horizon,
        input_size=card.input_size,
        id_column=card.id_column,
    )


# ---------------------------------------------------------------------------- the registry side


def _score_version(
    client: Any, name: str, v: int, tags: dict[str, str], cand: Candidate
) -> tuple[float | None, str]:
    """(version ``v``'s mse_scaled on the candidate's test windows or None, a note on how or why not)."""
    h = cand.data_hash
    rescored = " (re-scored on the current test windows: the data changed)"
    if tags.get(DATA_HASH_TAG) == h and MSE_TAG in tags:
        return float(tags[MSE_TAG]), ""
    if RESCORED_TAG + h in tags:
        return float(tags[RESCORED_TAG + h]), rescored
    log.info("the data changed since v%d was registered: re-scoring it on the current test windows", v)
    loaded = download_model(name, v)
    if isinstance(loaded, str):
        return None, loaded
    mse, why = score_on(*loaded, cand.panel, cand.seasonal_period)
    if mse is None:
        return None, why
    client.set_model_version_tag(name, str(v), RESCORED_TAG + h, repr(mse))
    return mse, rescored


def _incumbents(
    client: Any, name: str, cand: Candidate, identity: TaskIdentity
) -> Callable[[int], Incumbent]:
    """A cached lookup of a version as the gate sees it; only a same-task version is scored."""
    cache: dict[int, Incumbent] = {}
    mine = identity.view()

    def lookup(v: int) -> Incumbent:
        if v not in cache:
            tags = client.get_model_version(name, str(v)).tags or {}
            theirs = identity_from_tags(tags)
            mse, note = (
                _score_version(client, name, v, tags, cand)
                if mine.same_task(theirs)
                else (None, "another task")
            )
            cache[v] = Incumbent(version=v, identity=theirs, mse_scaled=mse, note=note)
        return cache[v]

    return lookup


def _log_and_register(
    client: Any,
    paths: Paths,
    cand: Candidate,
    identity: TaskIdentity,
    params: dict[str, Any],
    rc: RegisterConfig,
    target: str,
) -> tuple[Any, bool, str]:
    """The version for this fingerprint: found (a rerun) or logged and registered. (version, reused, experiment id)."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    store = local_store(uri)
    # a sqlite store keeps artifacts beside it (<root>/mlartifacts by default); a server decides itself
    artifacts = (
        (store.parent / paths.mlflow_artifacts.name).as_uri() if uri.startswith("sqlite:") and store else None
    )
    experiment_id = ensure_experiment(client, rc.experiment, artifacts)
    existing = find_version(client, rc.model_name, cand.fingerprint)
    if existing is not None:
        log.info(
            "v%s of %s already holds this model (a rerun): finishing its alias step",
            existing.version,
            rc.model_name,
        )
        return existing, True, experiment_id
    tags = lineage_tags(paths.root, cand, identity, params)
    run_id = find_logged_run(client, experiment_id, cand.fingerprint)
    if run_id is None:
        run_id, model_uri = log_run(client, paths, cand, experiment_id, tags, params, target)
    else:
        model_uri = client.get_run(run_id).data.tags[MODEL_URI_TAG]
        log.info("reusing MLflow run %s logged by an interrupted registration", run_id)
    mv = mlflow.register_model(model_uri, rc.model_name, tags=version_tags(cand, tags))
    client.update_model_version(rc.model_name, mv.version, description=tags["mlflow.note.content"])
    if not client.get_registered_model(rc.model_name).description:
        description = model_description(target, rc.model_name, rc.alias, rc.challenger_alias)
        client.update_registered_model(rc.model_name, description=description)
    return mv, False, experiment_id


def _register_once(
    data: DataConfig,
    rc: RegisterConfig,
    paths: Paths,
    cand: Candidate,
    identity: TaskIdentity,
    locked: bool,
    logged: dict[str, dict[str, Any]],
) -> RegisterResult:
    import mlflow
    from mlflow import MlflowClient

    uri = mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=mlflow.get_registry_uri())
    # the params that made the model (train saved its sections with it), those that chose the
    # data and the test windows, and this stage's own section
    params = {**logged, **cand.card.config, "register": rc.model_dump(mode="json")}
    mv, reused, experiment_id = _log_and_register(client, paths, cand, identity, params, rc, data.target)
    version, name = int(mv.version), rc.model_name
    experiment = os.environ.get(EXPERIMENT_ENV) or None
    lookup = _incumbents(client, name, cand, identity)
    contender = Contender(version, cand.mse_scaled, cand.baseline_mse_scaled, identity.view())

    def judge(holder: int | None) -> Decision:
        champion = lookup(holder) if holder is not None else None
        return decide(
            champion, contender, alias=rc.alias, challenger_alias=rc.challenger_alias, experiment=experiment
        )

    decision, previous = apply_alias(client, name, (rc.alias, rc.challenger_alias), version, judge, locked)
    client.set_model_version_tag(name, str(version), GATE_TAG, decision.reason)
    try:  # the run may be gone (deleted by a user): the tag is a nicety
        client.set_tag(mv.run_id, GATE_TAG, decision.reason)
    except Exception as e:  # noqa: BLE001
        log.debug("could not tag run %s: %s", mv.run_id, e)
    holder = alias_version(client, name, rc.alias)
    held = lookup(holder) if holder is not None and holder != version else None
    before = lookup(previous) if previous is not None and previous != version else None
    run = client.get_run(mv.run_id) if mv.run_id else None
    return RegisterResult(
        model_name=name,
        version=version,
        aliases=sorted(client.get_model_version(name, str(version)).aliases or []),
        champion=decision.champion,
        reason=decision.reason,
        run_id=mv.run_id or "",
        experiment_id=run.info.experiment_id if run else experiment_id,
        tracking_uri=uri,
        model_uri=f"models:/{name}/{version}",
        mse_scaled=cand.mse_scaled,
        champion_version=holder,
        champion_mse_scaled=cand.mse_scaled if holder == version else (held.mse_scaled if held else None),
        identity=identity.hash,
        identity_fields=identity.fields(),
        champion_identity=identity.hash if holder == version else (held.identity.hash if held else None),
        previous_champion_version=before.version if before else None,
        previous_champion_mse_scaled=before.mse_scaled if before else None,
        baseline_repeat_last_mse_scaled=cand.baseline_mse_scaled,
        fingerprint=cand.fingerprint,
        reused=reused,
        experiment=experiment,
    )


def run_register(
    data: DataConfig,
    split: SplitConfig,
    window: WindowConfig,
    evaluate: EvaluateConfig,
    register: RegisterConfig,
    paths: Paths,
) -> RegisterResult:
    """Log the run, register a version of ``register.model_name``, let the gate move the alias.

    Reads ``data`` and ``window`` (the task identity), ``register`` (names, aliases, retries),
    the outputs of train/evaluate/window, and logs ``data``, ``split`` and ``evaluate`` as the
    run's params beside the sections train saved with the model (``window``, ``model``, ``train``).
    """
    logged = {
        name: section.model_dump(mode="json")
        for name, section in (("data", data), ("split", split), ("evaluate", evaluate))
    }
    cand = read_candidate(data, window, paths)  # edge: read + cross-check the stage outputs
    identity = identity_of(data, cand)  # pure
    # one registration = this model, these metrics, these test data, for this task: the same
    # model file registered for another data source is another version
    cand = replace(
        cand, fingerprint=hashlib.sha256(f"{cand.fingerprint}:{identity.hash}".encode()).hexdigest()[:24]
    )
    uri = tracking_uri(paths)
    if experiment := os.environ.get(EXPERIMENT_ENV):
        log.info(
            "a `dvc exp run` experiment (%s=%s): this version gets at most the %s alias",
            EXPERIMENT_ENV,
            experiment,
            register.challenger_alias,
        )
    with mlflow_context(uri), store_lock(uri) as locked:  # edge: MLflow
        result = with_retries(
            lambda: _register_once(data, register, paths, cand, identity, locked, logged),
            uri,
            register.max_retries,
            register.retry_backoff_s,
        )
    write_json(paths.reports / REGISTERED_FILE, asdict(result))  # edge: atomic write
    log.info("%s v%d: %s", result.model_name, result.version, result.reason)
    return result


__all__ = ["RegisterResult", "identity_of", "read_candidate", "run_register"]
