"""Prefect flows: the pipeline's DVC stages as tasks, and training as its own GPU deployment.

``forecast_pipeline`` runs the stages of dvc.yaml in order (ingest, validate, window, train,
evaluate, register), each with ``dvc repro --single-item <stage>`` in the checkout, so that
after a run ``dvc status`` is clean and ``dvc repro`` re-runs nothing. With
``orchestration.train_pool: gpu`` in params.yaml, training goes to the ``train-gpu``
deployment (flow ``train_gpu``) on work pool ``gpu``: inputs and the trained model travel
through the DVC remote, the dvc.lock DVC wrote on the worker comes back as a flow-run artifact, with the stage's ``cache: false``
outputs (metrics, plot data: git's, not the DVC remote's).
The run ends by publishing forecasts/forecast.parquet as the table artifact ``forecast``.

``forecast_refresh`` re-runs ingest, validate and forecast through the CLI in the scratch root
``.refresh/`` (pipelines/delivery.py): new data, the current champion, no training, nothing
DVC tracks touched; it publishes the same artifact.

``forecast_on_evidence`` (the nightly deployment: ``forecast_pipeline`` with
``retrain="on-evidence"``) retrains only when ``tsforecast monitor`` decides so: tonight's rows
are ingested and validated in ``.refresh/``, the monitor scores the archive against them and
decides; a retrain runs every DVC stage (the gate decides the alias, the verdict is recorded),
otherwise the champion forecasts in ``.refresh/`` as the refresh does (pipelines/evidence.py).

Deployments are in prefect.yaml; pipelines/README.md explains workers and pools.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import Artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import State, TaskRun
from prefect.deployments import run_deployment
from prefect.states import Cancelling
from prefect.tasks import Task, exponential_backoff

from pipelines.delivery import (
    FORECAST_KEY,
    FORECAST_PARQUET,
    REFRESH_STAGES,
    cli_stage,
    forecast_summary,
    read_forecast,
    refresh_root,
    table_rows,
)
from pipelines.dvc_runner import (
    LOCK_FILE,
    StageFailed,
    adopt_lock,
    git_head,
    read_files,
    read_json,
    repo_root,
    repro_stage,
    restore_files,
    stage_plan,
    stage_ran,
    stage_status,
    transfer,
    uncached_outputs,
    upstream_stages,
    workspace_files,
    write_files,
    write_workspace_files,
)
from pipelines.evidence import MONITOR_KEY, monitor_cli, monitor_markdown, record_gate_cli
from pipelines.run_report import TRAIN_JSON, build_report

TRAIN_GPU_DEPLOYMENT = "train-gpu/train-gpu"  # <flow name>/<deployment name>, see prefect.yaml
REPORT_KEY = "forecast-report"
HANDOFF_KEY = "train-gpu-handoff"
TRAIN_GPU_REPORT_KEY = "train-gpu-report"
RETRIES = 3
RETRY_BACKOFF_S = 10.0  # first retry after ~10 s, then 20, 40 (with 20% jitter)
TRAIN_TIMEOUT_S = 6 * 3600.0
POLL_S = 5.0


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect's ``retry_condition_fn``: retry transient faults only, never a data or config error."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:
            return False
    return bool(getattr(exc, "transient", False)) or isinstance(exc, ConnectionError | TimeoutError)


# Stages that retry their own transient faults (register: MLflow, register.max_retries times):
# Prefect does not retry them again, so a fault is retried in one layer only.
SELF_RETRYING = frozenset({"register"})


def _retrying(retries: int, backoff_s: float) -> dict[str, Any]:
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff_s),
        "retry_jitter_factor": 0.2,
    }


_TASK_DEFAULTS: dict[str, Any] = {
    **_retrying(RETRIES, RETRY_BACKOFF_S),
    "retry_condition_fn": retry_if_transient,
    "cache_policy": NO_CACHE,  # DVC decides what is up to date, not Prefect
}


@task(name="dvc-repro", **_TASK_DEFAULTS)
def run_stage(root: str, stage: str) -> bool:
    """``dvc repro --single-item <stage>``; its output goes to the Prefect log. True: the stage ran
    (False: DVC found it up to date)."""
    log = get_run_logger()
    t0 = time.perf_counter()
    ran = stage_ran(repro_stage(Path(root), stage, log), stage)
    log.info(
        "%s finished in %.1f s: %s", stage, time.perf_counter() - t0, "ran" if ran else "up to date, skipped"
    )
    return ran


@task(name="dvc-transfer", **_TASK_DEFAULTS)
def dvc_transfer(root: str, command: Literal["push", "pull"], targets: list[str]) -> list[str]:
    """``dvc push`` / ``dvc pull`` of stages' outputs, through the DVC remote."""
    transfer(Path(root), get_run_logger(), command, targets)
    return targets


@task(name="dvc-status", **_TASK_DEFAULTS)
def stage_changes(root: str, stage: str) -> dict[str, Any]:
    """``dvc status <stage>``: empty when the stage would not re-run."""
    return stage_status(Path(root), stage, get_run_logger())


@task(name="dispatch-to-pool", **_TASK_DEFAULTS)
def dispatch_stage(
    root: str, stage: str, deployment: str, timeout_s: float, retries: int, retry_backoff_s: float
) -> dict[str, Any]:
    """Run ``stage`` through ``deployment`` on another worker and return its hand-off record.

    A crashed run (a lost worker) is retried; a failed one already had its own retries.
    """
    log = get_run_logger()
    params = {
        "workspace": workspace_files(Path(root)),
        "git_rev": git_head(Path(root)),
        "stage": stage,
        "retries": retries,
        "retry_backoff_s": retry_backoff_s,
    }
    log.info("sending stage '%s' to deployment %s", stage, deployment)
    run = run_deployment(deployment, parameters=params, timeout=timeout_s, poll_interval=POLL_S)
    state = run.state
    what = f"{deployment} run '{run.name}' ({run.id})"
    if state is None or not state.is_final():
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(message="the pipeline stopped waiting"), force=True)
        raise StageFailed(
            what,
            transient=False,
            detail=[
                f"still {state.name if state else 'unknown'} after {timeout_s:g} s; cancelled. "
                "Is a worker polling its pool? (prefect worker start --pool gpu)"
            ],
        )
    if not state.is_completed():
        raise StageFailed(
            what,
            transient=state.is_crashed(),
            detail=[f"ended {state.name}: {state.message or ''}".rstrip(": ")],
        )
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]), key=ArtifactFilterKey(any_=[HANDOFF_KEY])
            )
        )
    if not found:
        raise StageFailed(what, transient=False, detail=[f"completed without a '{HANDOFF_KEY}' artifact"])
    handoff = found[0].data
    handoff = json.loads(handoff) if isinstance(handoff, str) else handoff
    log.info(
        "stage '%s' ran on %s, device %s, %s samples/s",
        stage,
        handoff.get("host"),
        handoff.get("device"),
        handoff.get("samples_per_second"),
    )
    return {**handoff, "flow_run_id": str(run.id)}


@task(name="adopt-remote-outputs", **_TASK_DEFAULTS)
def adopt_outputs(root: str, stage: str, lock_text: str, files: dict[str, str] | None = None) -> None:
    """Take the worker's dvc.lock and the stage's ``cache: false`` outputs (``files``: they travel
    in the hand-off record, not the DVC remote), ``dvc pull`` the rest, check ``dvc status``; if
    the worker's code or params differed, both are rolled back and the run fails."""
    path = Path(root)
    before_files = write_files(path, files or {})
    try:
        adopt_lock(path, lock_text, stage, get_run_logger())
    except BaseException:
        restore_files(path, before_files)
        raise


@task(name="publish-forecast", cache_policy=NO_CACHE)
def publish_forecast(root: str, path: str, source: str) -> dict[str, Any] | None:
    """The forecast file as a table artifact (key ``forecast``); None when there is no file."""
    file = Path(path)
    if not file.is_file():
        get_run_logger().warning("%s not found: no forecast to publish", file)
        return None
    frame = read_forecast(file)
    summary = forecast_summary(frame, file, Path(root))
    rows = table_rows(frame)
    shown = "" if len(rows) == len(frame) else f" (first {len(rows)} of {len(frame)} rows)"
    create_table_artifact(
        table=rows,
        key=FORECAST_KEY,
        description=f"tsforecast {source}: {summary['path']}{shown}, {summary['first']} .. {summary['last']}",
    )
    get_run_logger().info("published %s: %d rows", summary["path"], summary["rows"])
    return summary


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(
    root: str,
    stages: list[str],
    failed: str | None = None,
    remote_train: dict[str, Any] | None = None,
    forecast: dict[str, Any] | None = None,
    ran: list[str] | None = None,
) -> str:
    """The run's markdown artifact: metrics vs baselines, registered version and alias, MLflow link."""
    markdown = build_report(
        Path(root), stages, failed=failed, remote_train=remote_train, forecast=forecast, ran=ran
    )
    create_markdown_artifact(
        markdown=markdown, key=REPORT_KEY, description="tsforecast: metrics, registered model, MLflow run"
    )
    return markdown


def train_on_pool(
    root: str, stage: str, deployment: str, timeout_s: float, retries: int, retry_backoff_s: float
) -> dict[str, Any] | None:
    """Push the stage's inputs, run it on the pool's worker, adopt its outputs. None: up to date."""
    opts = _retrying(retries, retry_backoff_s)
    if not stage_changes.with_options(**opts)(root, stage):
        get_run_logger().info("stage '%s' is up to date; nothing to send to the pool", stage)
        return None
    upstream = upstream_stages(Path(root), stage, get_run_logger())
    dvc_transfer.with_options(name="dvc-push-inputs", **opts)(root, "push", upstream)
    handoff = dispatch_stage.with_options(**opts)(
        root, stage, deployment, timeout_s, retries, retry_backoff_s
    )
    adopt_outputs.with_options(**opts)(root, stage, handoff[LOCK_FILE], handoff.get("files"))
    return {k: v for k, v in handoff.items() if k not in (LOCK_FILE, "files")}


@flow(name="forecast-pipeline", log_prints=True)
def forecast_pipeline(
    repo_dir: str | None = None,
    stages: list[str] | None = None,
    retries: int = RETRIES,
    retry_backoff_s: float = RETRY_BACKOFF_S,
    train_timeout_s: float = TRAIN_TIMEOUT_S,
    retrain: Literal["always", "on-evidence"] = "always",
) -> dict[str, Any]:
    """ingest -> validate -> window -> train -> evaluate -> register (then the other stages of
    dvc.yaml), each a `dvc repro` of one stage; ends by publishing forecasts/forecast.parquet as
    the table artifact ``forecast`` when the plan has the forecast stage.

    Args:
        repo_dir: the checkout to run in (default: the working directory the worker set).
        stages: run only these stages of dvc.yaml (default: all, in pipeline order).
        retries: retries of a transient fault per task (data and config errors: none).
        retry_backoff_s: first retry delay; it doubles with each retry.
        train_timeout_s: how long to wait for the `train-gpu` deployment when training there.
        retrain: ``always`` (every stage, as `dvc repro`), or ``on-evidence`` (the nightly
            deployment): :func:`forecast_on_evidence`, training only when the monitor decides so.
    """
    from tsforecast.config import load_config

    if retrain == "on-evidence":  # in this flow run (.fn): its tasks and artifacts are the nightly run's
        return forecast_on_evidence.fn(repo_dir, retries, retry_backoff_s, train_timeout_s)
    root = repo_root(repo_dir)
    log = get_run_logger()
    plan = stage_plan(root, stages, log)
    pool = load_config(root / "params.yaml").orchestration.train_pool
    log.info("stages: %s; train_pool: %s; checkout: %s", " -> ".join(plan), pool, root)
    opts = _retrying(retries, retry_backoff_s)
    remote: dict[str, Any] | None = None
    ran: list[str] = []  # the stages DVC did not skip as up to date
    try:
        for stage in plan:
            if stage == "train" and pool == "gpu":
                remote = train_on_pool(
                    str(root), stage, TRAIN_GPU_DEPLOYMENT, train_timeout_s, retries, retry_backoff_s
                )
                did_run = remote is not None
            else:
                retried = {**opts, "retries": 0} if stage in SELF_RETRYING else opts
                did_run = run_stage.with_options(name=stage, **retried)(str(root), stage)
            if did_run:
                ran.append(stage)
    except Exception as e:
        try:  # the report says where the run stopped; the stage's error is what the flow fails with
            publish_report(str(root), plan, failed=str(e), remote_train=remote, ran=ran)
        except Exception:
            log.exception("could not publish the failure report")
        raise
    published = (
        publish_forecast(str(root), str(root / FORECAST_PARQUET), "nightly pipeline")
        if "forecast" in plan
        else None
    )
    publish_report(str(root), plan, remote_train=remote, forecast=published, ran=ran)
    return {"stages": plan, "train_pool": pool, "remote_train": remote, "ran": ran, "forecast": published}


@task(name="refresh-root", cache_policy=NO_CACHE)
def prepare_refresh(root: str) -> str:
    """The scratch root of the refresh (.refresh/): params, a copy of the model and its record."""
    return str(refresh_root(Path(root)))


@task(name="tsforecast", **_TASK_DEFAULTS)
def run_cli_stage(root: str, stage: str) -> str:
    """``tsforecast <stage> --root <root>``, outside DVC; its output goes to the Prefect log."""
    cli_stage(Path(root), stage, get_run_logger())
    return stage


@flow(name="forecast-refresh", log_prints=True)
def forecast_refresh(
    repo_dir: str | None = None,
    stages: list[str] | None = None,
    retries: int = RETRIES,
    retry_backoff_s: float = RETRY_BACKOFF_S,
) -> dict[str, Any]:
    """ingest -> validate -> forecast with the current champion, no training, in .refresh/.

    The stages run through the CLI against the scratch root ``<checkout>/.refresh`` (its own
    data/ and forecasts/), so nothing DVC tracks changes and ``dvc status`` stays clean. The
    forecast is published as the table artifact ``forecast`` and left in
    ``.refresh/forecasts/forecast.parquet``.

    Args:
        repo_dir: the checkout whose params, model and registry record to use (default: cwd).
        stages: the stages to re-run (default: ingest, validate, forecast).
        retries: retries of a transient fault per stage (data and config errors: none).
        retry_backoff_s: first retry delay; it doubles with each retry.
    """
    root = repo_root(repo_dir)
    plan = list(stages or REFRESH_STAGES)
    scratch = prepare_refresh(str(root))
    get_run_logger().info("refresh: %s in %s, no training", " -> ".join(plan), scratch)
    opts = _retrying(retries, retry_backoff_s)
    for stage in plan:
        run_cli_stage.with_options(name=stage, **opts)(scratch, stage)
    published = publish_forecast(str(root), str(Path(scratch) / FORECAST_PARQUET), "hourly refresh")
    return {"stages": plan, "root": scratch, "forecast": published}


@task(name="monitor", **_TASK_DEFAULTS)
def monitor_decision(root: str, data_dir: str) -> dict[str, Any]:
    """``tsforecast monitor --data <data_dir>``: the archive scored, drift, the decision (monitor.json)."""
    return monitor_cli(Path(root), Path(data_dir), get_run_logger())


@task(name="record-gate", **_TASK_DEFAULTS)
def record_gate(root: str) -> dict[str, Any]:
    """``tsforecast monitor --record-gate``: the gate's verdict on tonight's retrain, recorded."""
    return record_gate_cli(Path(root), get_run_logger())


@task(name="publish-monitor", cache_policy=NO_CACHE)
def publish_monitor(report: dict[str, Any], gate: dict[str, Any] | None) -> str:
    """The night's decision, its reasons and the numbers behind them as a markdown artifact."""
    markdown = monitor_markdown(report, gate)
    create_markdown_artifact(
        markdown=markdown, key=MONITOR_KEY, description="tsforecast: the nightly decision"
    )
    return markdown


@flow(name="forecast-on-evidence", log_prints=True)
def forecast_on_evidence(
    repo_dir: str | None = None,
    retries: int = RETRIES,
    retry_backoff_s: float = RETRY_BACKOFF_S,
    train_timeout_s: float = TRAIN_TIMEOUT_S,
) -> dict[str, Any]:
    """Tonight's rows in, the monitor's decision, a retrain only when decided, a forecast out.

    ingest -> validate in ``.refresh/`` (nothing DVC tracks changes) -> ``tsforecast monitor``
    against those rows -> retrain: every DVC stage (:func:`forecast_pipeline`; the gate moves the
    alias or not) and ``tsforecast monitor --record-gate``; otherwise: forecast with the champion
    in ``.refresh/``. Every delivery is archived by the forecast stage itself.
    """
    root = repo_root(repo_dir)
    opts = _retrying(retries, retry_backoff_s)
    scratch = prepare_refresh(str(root))
    for stage in ("ingest", "validate"):
        run_cli_stage.with_options(name=stage, **opts)(scratch, stage)
    report = monitor_decision.with_options(**opts)(str(root), str(Path(scratch) / "data" / "validated"))
    gate: dict[str, Any] | None = None
    if report["decision"]["retrain"]:
        inner = forecast_pipeline.fn(  # the stages as tasks of this run, as `forecast-on-demand` runs them
            repo_dir=str(root),
            retries=retries,
            retry_backoff_s=retry_backoff_s,
            train_timeout_s=train_timeout_s,
        )
        gate = record_gate.with_options(**opts)(str(root))
        published, ran = inner.get("forecast"), inner.get("ran", [])
    else:
        run_cli_stage.with_options(name="forecast", **opts)(scratch, "forecast")
        published = publish_forecast(str(root), str(Path(scratch) / FORECAST_PARQUET), "nightly, no retrain")
        ran = []
    publish_monitor(report, gate)
    return {
        "decision": report["decision"],
        "retrained": "train" in ran,
        "ran": ran,
        "gate": gate,
        "forecast": published,
    }


@task(name="sync-workspace", cache_policy=NO_CACHE)
def sync_workspace(root: str, workspace: dict[str, str], git_rev: str | None) -> list[str]:
    """Take the pipeline run's params.yaml, dvc.yaml and dvc.lock; warn when the code differs."""
    log = get_run_logger()
    head = git_head(Path(root))
    if git_rev and head and head != git_rev:
        log.warning(
            "this checkout is at commit %s, the pipeline at %s: if code deps differ, the pipeline "
            "will refuse the result (git fetch && git checkout %s on this host)",
            head[:12],
            git_rev[:12],
            git_rev[:12],
        )
    return write_workspace_files(Path(root), workspace, log)


def _device_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    try:
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return torch.cuda.get_device_name(index)
    except Exception:  # reporting only: never fail a finished training over a device name
        return None


@task(name="report-device", cache_policy=NO_CACHE)
def report_handoff(root: str, stage: str) -> dict[str, Any]:
    """The hand-off record (the dvc.lock DVC wrote here + device) as an artifact the pipeline reads back."""
    log = get_run_logger()
    train = read_json(Path(root) / TRAIN_JSON) or {}
    device = str(train.get("device", "unknown"))
    record = {
        "stage": stage,
        LOCK_FILE: (Path(root) / LOCK_FILE).read_text(),
        "files": read_files(Path(root), uncached_outputs(Path(root), stage)),  # git's, not DVC's
        "device": device,
        "device_name": _device_name(device),
        "samples_per_second": train.get("samples_per_second"),
        "host": socket.gethostname(),
    }
    if not device.startswith("cuda"):
        log.warning(
            "stage '%s' ran on device %s, not a GPU (train.device: auto finds none here)", stage, device
        )
    Artifact(type="json", key=HANDOFF_KEY, description=f"dvc.lock after '{stage}'", data=record).create()
    rows = [f"| {k} | {record[k]} |" for k in ("host", "device", "device_name", "samples_per_second")]
    create_markdown_artifact(
        markdown="\n".join([f"# {stage} on the gpu pool", "", "| | |", "|---|---|", *rows, ""]),
        key=TRAIN_GPU_REPORT_KEY,
        description=f"where '{stage}' ran and how fast",
    )
    log.info(
        "stage '%s' ran on %s (%s), %s samples/s",
        stage,
        device,
        record["device_name"],
        record["samples_per_second"],
    )
    return record


@flow(name="train-gpu", log_prints=True)
def train_gpu(
    workspace: dict[str, str],
    git_rev: str | None = None,
    stage: str = "train",
    repo_dir: str | None = None,
    retries: int = RETRIES,
    retry_backoff_s: float = RETRY_BACKOFF_S,
) -> dict[str, Any]:
    """Run one stage on this worker's own checkout: pull its inputs from the DVC remote, run it,
    push its outputs, and report dvc.lock and the device back to the pipeline.

    Args:
        workspace: params.yaml, dvc.yaml and dvc.lock of the pipeline run (file name -> text).
        git_rev: the pipeline's commit; this checkout should be at the same one.
        stage: the DVC stage to run (train).
        repo_dir: this worker's checkout (default: the working directory the worker set).
    """
    root = str(repo_root(repo_dir))
    opts = _retrying(retries, retry_backoff_s)
    sync_workspace(root, workspace, git_rev)
    upstream = upstream_stages(Path(root), stage, get_run_logger())
    dvc_transfer.with_options(name="dvc-pull-inputs", **opts)(root, "pull", upstream)
    run_stage.with_options(name=stage, **opts)(root, stage)
    dvc_transfer.with_options(name="dvc-push-outputs", **opts)(root, "push", [stage])
    return report_handoff(root, stage)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.flows``: run the pipeline flow once, in this process.

    Prefect runs the flow here (a temporary local API unless PREFECT_API_URL names a server);
    each stage is ``dvc repro --single-item <stage>`` in the checkout, so ``dvc status`` is
    clean afterwards. Per-series work of a panel goes where ``orchestration.dask_address``
    in params.yaml says (a running Dask scheduler, or this machine).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.flows",
        description="Run the forecast-pipeline flow once, in-process (no worker, no deployment). "
        "Stages run with `dvc repro --single-item`, so `dvc status` is clean afterwards.",
    )
    parser.add_argument("--repo-dir", default=None, help="the checkout to run in (default: the current one)")
    parser.add_argument(
        "--stage",
        dest="stages",
        action="append",
        metavar="NAME",
        help="run only this dvc.yaml stage (repeat for several; default: every stage, in order)",
    )
    parser.add_argument("--retries", type=int, default=RETRIES, help="retries of a transient fault per task")
    parser.add_argument(
        "--on-evidence",
        action="store_true",
        help="run the nightly logic instead: retrain only when `tsforecast monitor` decides so",
    )
    args = parser.parse_args(argv)
    try:
        if args.on_evidence:
            night = forecast_on_evidence(repo_dir=args.repo_dir, retries=args.retries)
            verdict = "retrain" if night["decision"]["retrain"] else "keep the champion"
            print(f"nightly done: {verdict}: {'; '.join(night['decision']['reasons'])}")
            return 0
        result = forecast_pipeline(repo_dir=args.repo_dir, stages=args.stages, retries=args.retries)
    except Exception as exc:  # the flow logged the stage's own error; one line for the shell
        print(
            f"error: the pipeline flow failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        )
        return 1
    ran = result.get("ran") or []
    print(
        f"pipeline done: {len(ran)} of {len(result['stages'])} stages ran ({', '.join(ran) or 'all up to date'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
