"""The MLflow run of a pipeline run: params, per-epoch metrics, artifacts, the pyfunc model.

The run spans the work it records: it starts when training started and ends when the
registration ends. :mod:`tsforecast.registry.tracking` knows where the store is and retries; this
module only logs.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tsforecast.io import read_json
from tsforecast.paths import BY_SERIES_FILE, Paths
from tsforecast.registry.lineage import flat_metrics
from tsforecast.registry.types import MODEL_ARTIFACT, MODEL_URI_TAG, Candidate

RUN_SPAN_MAX_S = 24 * 3600.0  # an MLflow run starts when training did, if that is within a day


def _input_example(paths: Paths, cand: Candidate) -> Any:
    """The validated frame (the run's dataset input) and the model's input example."""
    import pandas as pd

    from tsforecast.dataset.long import frame_columns
    from tsforecast.registry.pyfunc import serving_example

    card = cand.card
    columns = frame_columns(card, card.timestamp_column, *card.columns)  # a panel keeps its series ids
    frame = pd.read_parquet(paths.validated / "data.parquet", columns=columns)
    return frame, serving_example(frame, card)


def model_metadata(cand: Candidate) -> dict[str, Any]:
    """The card's small facts for the MLmodel file (the scalers, calibration and config stay in model.pt)."""
    return {
        k: v for k, v in cand.card.to_extra().items() if k not in ("config", "intervals", "series_scalers")
    }


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
    if (paths.metrics / BY_SERIES_FILE).is_file():  # per-series scores: an artifact, not a model per series
        mlflow.log_artifact(str(paths.metrics / BY_SERIES_FILE), "metrics")
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

    from tsforecast.registry.lineage import flat_params
    from tsforecast.registry.pyfunc import ARTIFACT_KEY, model_signature, write_model_code

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
                signature=model_signature(cand.card),
                input_example=example,
                pip_requirements=_pip_requirements(),
                metadata={"tsforecast": model_metadata(cand)},
            )
        mlflow.set_tag(MODEL_URI_TAG, info.model_uri)
    return run_id, info.model_uri


__all__ = ["RUN_SPAN_MAX_S", "log_run"]
