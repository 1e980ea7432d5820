"""The Prefect flows in Prefect's test harness (a temporary API and database).

Most tests drive a *stand-in* pipeline: the real dvc.yaml's shape (six stages, the same
outputs and hand-offs) with each stage a few lines of Python, so they test the orchestration
(order, retries, DVC status, the report, the GPU-pool hand-off) in seconds and without torch.
One test runs the real stages of dvc.yaml, on a copy of the session's built repo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.states import Crashed, Scheduled
from prefect.testing.utilities import prefect_test_harness

import pipelines.flows as flows
from pipelines.dvc_runner import stage_plan
from pipelines.flows import HANDOFF_KEY, REPORT_KEY, TRAIN_GPU_DEPLOYMENT, forecast_pipeline, train_gpu
from tests.integration.conftest import BuiltRepo
from tsforecast.stages import NAMES

REPO = Path(__file__).resolve().parents[2]
PYTHON_BIN = str(Path(sys.executable).parent)
FAST = {"retries": 3, "retry_backoff_s": 0.05}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway Prefect API and database for this module (~10 s to start)."""
    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(autouse=True)
def _stage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")]))
    for key in list(os.environ):
        if key.startswith("STANDIN_"):
            monkeypatch.delenv(key)


# --------------------------------------------------------------------------- stand-in pipeline

STAND_IN_STAGE = textwrap.dedent(
    '''
    """Stand-in for `tsforecast <stage>`: reads its inputs, writes its outputs, fails on request.

    STANDIN_FAIL_<STAGE>=<kind>[:<n>] fails the first n runs (default: all): `user` prints an
    `error:` line and exits 1 (a data error), `unreachable` says MLflow could not be reached
    and exits 75 (EX_TEMPFAIL, as the CLI does for a TransientError), `says-unreachable` prints
    the same line but exits 1, `usage` exits 2, `kill` dies by SIGKILL.
    Runs are counted in .standin/<stage>.runs of this checkout.
    """
    import json, os, signal, sys
    from pathlib import Path

    stage = sys.argv[1]
    runs = Path(".standin") / f"{stage}.runs"
    runs.parent.mkdir(exist_ok=True)
    n = int(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text(str(n))
    kind, _, times = os.environ.get(f"STANDIN_FAIL_{stage.upper()}", "").partition(":")
    if kind and n <= int(times or 99):
        if kind == "user":
            print("error: data/raw/data.parquet: timestamp 2024-01-01 00:30:00 appears twice "
                  "(rows 1 and 2); timestamps must be unique", file=sys.stderr)
            sys.exit(1)
        if kind in ("unreachable", "says-unreachable"):
            print("error: MLflow at http://127.0.0.1:9 is unreachable: 5 attempt(s) over 30 s "
                  "failed (Connection refused); the model was not registered", file=sys.stderr)
            sys.exit(75 if kind == "unreachable" else 1)
        if kind == "usage":
            print("usage: stage.py STAGE", file=sys.stderr)
            sys.exit(2)
        if kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)

    def read(path):
        return json.loads(Path(path).read_text())

    def write(path, data):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1))

    if stage == "ingest":
        write("data/raw/data.json", {"values": [float(i % 48) for i in range(480)]})
    elif stage == "validate":
        write("data/validated/data.json", read("data/raw/data.json"))
    elif stage == "window":
        write("data/prepared/series.json", read("data/validated/data.json"))
    elif stage == "train":
        n = len(read("data/prepared/series.json")["values"])
        write("models/model.json", {"trained_in": os.getcwd(), "n": n})
        write("metrics/train.json", {"epochs": 1, "best_val_loss": 0.5, "train_seconds": 0.2,
              "samples_per_second": 1234.5, "device": os.environ.get("STANDIN_DEVICE", "cpu"),
              "n_params": 10})
    elif stage == "evaluate":
        read("models/model.json")
        base = {"mse_scaled": 0.9, "mae_scaled": 0.7, "mse": 900.0, "mae": 21.0, "rmse": 30.0,
                "mase": 1.2, "smape": 9.0}
        write("metrics/evaluate.json", {"mse_scaled": 0.25, "mae_scaled": 0.35, "mse": 250.0,
              "mae": 11.0, "rmse": 15.8, "mase": 0.6, "smape": 4.1, "n_windows": 97,
              "baselines": {"repeat_last": base, "seasonal_naive": {**base, "mae": 14.0}}})
    elif stage == "register":
        read("metrics/evaluate.json")
        write("reports/registered.json", {"model_name": "tsforecast-lstm", "version": 3,
              "aliases": ["champion"], "run_id": "abc123", "experiment_id": "7",
              "tracking_uri": os.environ.get("STANDIN_TRACKING_URI", "http://127.0.0.1:5000"),
              "champion": True, "reason": "mae 11.0 < champion's 12.5"})
    print(f"{stage}: done")
    '''
).lstrip()

# Same stages and outputs as the real pipeline; listed out of order on purpose.
STAND_IN_DVC_YAML = textwrap.dedent(
    """
    stages:
      register:
        cmd: python stage.py register
        deps: [stage.py, models/model.json, metrics/evaluate.json]
        params: [register]
        outs: [reports/registered.json]
      ingest:
        cmd: python stage.py ingest
        deps: [stage.py]
        params: [data.path]
        outs: [data/raw]
      window:
        cmd: python stage.py window
        deps: [stage.py, data/validated]
        params: [window]
        outs: [data/prepared]
      validate:
        cmd: python stage.py validate
        deps: [stage.py, data/raw]
        outs: [data/validated]
      train:
        cmd: python stage.py train
        deps: [stage.py, data/prepared]
        params: [train.epochs, model]
        outs: [models/model.json]
        metrics: [metrics/train.json: {cache: false}]
      evaluate:
        cmd: python stage.py evaluate
        deps: [stage.py, data/prepared, models/model.json]
        metrics: [metrics/evaluate.json: {cache: false}]
    """
).lstrip()


# the stand-in's stages (no backtest, no forecast), in the stage table's order
PIPELINE_ORDER = [s for s in NAMES if f"\n  {s}:\n" in STAND_IN_DVC_YAML]


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def _dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _params(overrides: dict[str, Any]) -> str:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        assert leaf in node, f"params.yaml has no key {dotted}"
        node[leaf] = value
    return yaml.safe_dump(params, sort_keys=False)


def make_repo(
    path: Path,
    *,
    dvc_yaml: str,
    params: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    remote: Path | None = None,
) -> Path:
    """A git + DVC checkout at ``path`` with one commit; its DVC remote is ``remote``."""
    path.mkdir(parents=True, exist_ok=True)
    contents = {
        "dvc.yaml": dvc_yaml,
        "params.yaml": _params(params or {}),
        ".gitignore": ".standin/\n.dvc-storage/\n",
        ".dvc/.gitignore": "/config.local\n/tmp\n/cache\n",
        ".dvc/config": (
            "[core]\n    analytics = false\n    remote = local\n"
            f"['remote \"local\"']\n    url = {remote or '../.dvc-storage'}\n"
        ),
        **(files or {}),
    }
    for name, text in contents.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "test checkout")
    return path


def stand_in_repo(
    path: Path, remote: Path | None = None, files: dict[str, str] | None = None, **params: Any
) -> Path:
    """A checkout of the stand-in pipeline; ``params`` are dotted params.yaml overrides."""
    files = {"stage.py": STAND_IN_STAGE, **(files or {})}
    return make_repo(path, dvc_yaml=STAND_IN_DVC_YAML, params=params, files=files, remote=remote)


def runs(repo: Path, stage: str) -> int:
    counter = repo / ".standin" / f"{stage}.runs"
    return int(counter.read_text()) if counter.exists() else 0


def assert_dvc_clean(repo: Path) -> None:
    """`dvc status` has nothing to report and `dvc repro` would run nothing."""
    assert json.loads(_dvc(repo, "status", "--json") or "{}") == {}
    dry = _dvc(repo, "repro", "--dry")
    assert "Running stage" not in dry, dry


def flow_logs(flow_run_id: Any) -> str:
    APILogHandler().flush()  # send the queued log records before reading them back
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def report_markdown(flow_run_id: Any) -> str:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
                key=ArtifactFilterKey(any_=[REPORT_KEY]),
            )
        )
    assert len(found) == 1, found
    return str(found[0].data)


# --------------------------------------------------------------------------- order, status, retries


def test_stage_plan_follows_the_pipeline_order_not_the_file_order(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    assert PIPELINE_ORDER == ["ingest", "validate", "window", "train", "evaluate", "register"]
    assert stage_plan(repo) == PIPELINE_ORDER
    assert stage_plan(repo, ["register", "ingest"]) == ["ingest", "register"]
    with pytest.raises(ValueError, match=r"stages \['predict'\] are not in"):
        stage_plan(repo, ["predict"])


def test_pipeline_runs_every_stage_once_in_order_and_leaves_dvc_clean(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path / "repo")

    result = forecast_pipeline(repo_dir=str(repo), **FAST)

    assert result["stages"] == list(PIPELINE_ORDER)
    assert result["train_pool"] == "local"
    assert [runs(repo, s) for s in PIPELINE_ORDER] == [1] * 6
    assert_dvc_clean(repo)


def test_second_run_reruns_nothing(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    forecast_pipeline(repo_dir=str(repo), **FAST)

    forecast_pipeline(repo_dir=str(repo), **FAST)

    assert [runs(repo, s) for s in PIPELINE_ORDER] == [1] * 6


def test_validation_failure_fails_the_flow_at_once_with_the_message_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_VALIDATE", "user")

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    assert state.is_failed()
    assert "timestamp 2024-01-01 00:30:00 appears twice" in state.message
    assert runs(repo, "validate") == 1, "a data validation failure must not be retried"
    assert runs(repo, "window") == 0
    logs = flow_logs(state.state_details.flow_run_id)
    assert "error: data/raw/data.parquet: timestamp 2024-01-01 00:30:00 appears twice" in logs


def test_user_error_in_a_later_stage_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_TRAIN", "user")

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    assert state.is_failed()
    assert runs(repo, "train") == 1
    assert "stage 'train' failed (exit 1, not retried)" in state.message


def test_a_transient_fault_is_retried_with_backoff_until_it_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_EVALUATE", "unreachable:2")  # exit 75 twice, then fine

    result = forecast_pipeline(repo_dir=str(repo), **FAST)

    assert result["stages"][-1] == "register"
    assert runs(repo, "evaluate") == 3
    assert_dvc_clean(repo)


def test_register_is_not_retried_again_by_prefect_it_retries_mlflow_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_REGISTER", "unreachable:1")  # exit 75 once: its retries were spent

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    assert state.is_failed()
    assert runs(repo, "register") == 1, "one retry layer: register.max_retries inside the stage"
    assert "MLflow at http://127.0.0.1:9 is unreachable" in state.message


def test_killed_stage_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_TRAIN", "kill:1")

    forecast_pipeline(repo_dir=str(repo), **FAST)

    assert runs(repo, "train") == 2
    assert_dvc_clean(repo)


def test_transient_fault_that_persists_fails_after_the_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_EVALUATE", "unreachable")

    state = forecast_pipeline(repo_dir=str(repo), retries=2, retry_backoff_s=0.05, return_state=True)

    assert state.is_failed()
    assert runs(repo, "evaluate") == 3
    assert "MLflow at http://127.0.0.1:9 is unreachable" in state.message


@pytest.mark.parametrize("kind", ["says-unreachable", "usage"])
def test_retries_follow_the_exit_code_not_the_error_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_REGISTER", kind)

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    assert state.is_failed()
    assert runs(repo, "register") == 1, "only exit code 75 or a killed stage is retried"
    assert "not retried" in state.message


# --------------------------------------------------------------------------- the report artifact


def test_report_has_metrics_vs_baselines_version_alias_and_mlflow_link(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path / "repo")

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    md = report_markdown(state.state_details.flow_run_id)
    assert "| model | mse_scaled | mae_scaled | mse | mae | rmse | mase | smape |" in md
    assert "| LSTM | **0.25** | **0.35** | **250** | **11** | **15.8** | **0.6** | **4.1** |" in md
    assert "| repeat last | 0.9 |" in md and "| seasonal naive | 0.9 |" in md
    assert "Over 97 test windows" in md
    assert "`tsforecast-lstm` version **3**, aliases: `@champion`" in md
    assert "[abc123](http://127.0.0.1:5000/#/experiments/7/runs/abc123)" in md
    assert "device: `cpu`" in md


def test_report_names_what_is_missing_when_later_stages_did_not_run(tmp_path: Path) -> None:
    repo = stand_in_repo(tmp_path / "repo")

    state = forecast_pipeline(repo_dir=str(repo), stages=["ingest", "validate"], **FAST, return_state=True)

    md = report_markdown(state.state_details.flow_run_id)
    assert "Stages: ingest → validate" in md
    assert "`metrics/evaluate.json` not found: the evaluate stage has not run." in md
    assert "`reports/registered.json` not found: the register stage has not run." in md


def test_failed_run_still_leaves_a_report_with_the_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = stand_in_repo(tmp_path / "repo")
    monkeypatch.setenv("STANDIN_FAIL_VALIDATE", "user")

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    md = report_markdown(state.state_details.flow_run_id)
    assert md.startswith("# Forecast pipeline run: failed")
    assert "appears twice" in md


# --------------------------------------------------------------------------- the gpu pool hand-off


class FakeGpuPool:
    """Stands in for ``run_deployment`` + a worker on pool ``gpu`` on another host: each call
    runs the ``train_gpu`` flow in a fresh ``git clone`` that shares only the DVC remote.

    ``script`` lists what successive calls do: ``run`` (the flow), ``crash`` (a lost
    worker: a Crashed run), ``unpicked`` (no worker: the run stays Scheduled).
    """

    def __init__(self, main: Path, hosts: Path, script: tuple[str, ...] = ("run",)) -> None:
        self.main, self.hosts, self.script = main, hosts, list(script)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.clones: list[Path] = []

    def __call__(self, name: str, parameters: dict[str, Any], **kwargs: Any) -> Any:
        self.calls.append((name, parameters))
        action = self.script.pop(0) if self.script else "run"
        with get_client(sync_client=True) as client:
            if action in ("crash", "unpicked"):
                state = Crashed(message="worker lost") if action == "crash" else Scheduled()
                run = client.create_flow_run(flow=train_gpu, parameters=parameters, state=state)
                return client.read_flow_run(run.id)
            clone = self.hosts / f"gpu-host-{len(self.calls)}"
            _git(self.hosts, "clone", "-q", str(self.main), str(clone))
            assert not (clone / "data" / "prepared").exists(), "the worker must not see the pipeline's disk"
            self.clones.append(clone)
            state = train_gpu(**parameters, repo_dir=str(clone), return_state=True)
            return client.read_flow_run(state.state_details.flow_run_id)


@pytest.fixture
def gpu_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def setup(script: tuple[str, ...] = ("run",)) -> tuple[Path, FakeGpuPool]:
        remote = tmp_path / "shared-dvc-remote"
        main = stand_in_repo(tmp_path / "pipeline-host", remote=remote, **{"orchestration.train_pool": "gpu"})
        pool = FakeGpuPool(main, tmp_path, script)
        monkeypatch.setattr(flows, "run_deployment", pool)
        monkeypatch.setenv("STANDIN_DEVICE", "cuda:0")
        return main, pool

    return setup


def test_gpu_pool_sends_train_to_the_train_gpu_deployment_through_the_dvc_remote(gpu_setup) -> None:
    main, pool = gpu_setup()

    result = forecast_pipeline(repo_dir=str(main), **FAST)

    assert [name for name, _ in pool.calls] == [TRAIN_GPU_DEPLOYMENT]
    params = pool.calls[0][1]
    assert params["stage"] == "train" and params["git_rev"] == _git(main, "rev-parse", "HEAD").strip()
    assert "train_pool: gpu" in params["workspace"]["params.yaml"]
    worker = pool.clones[0]
    assert runs(main, "train") == 0 and runs(worker, "train") == 1, "train must run on the worker only"
    model = json.loads((main / "models" / "model.json").read_text())
    assert model["trained_in"] == str(worker), "the model came back through the DVC remote"
    assert (main / "metrics" / "train.json").is_file()
    assert [runs(main, s) for s in ("evaluate", "register")] == [1, 1]
    assert result["remote_train"]["device"] == "cuda:0"
    assert result["remote_train"]["samples_per_second"] == 1234.5
    assert_dvc_clean(main)


def test_gpu_worker_reports_its_device_in_an_artifact(gpu_setup) -> None:
    main, pool = gpu_setup()

    state = forecast_pipeline(repo_dir=str(main), **FAST, return_state=True)

    handoff = Artifact.get(HANDOFF_KEY)
    assert handoff is not None
    record = json.loads(handoff.data) if isinstance(handoff.data, str) else handoff.data
    assert record["device"] == "cuda:0"
    assert yaml.safe_load(record["dvc.lock"])["stages"]["train"]["cmd"] == "python stage.py train"
    md = report_markdown(state.state_details.flow_run_id)
    assert "on work pool `gpu`" in md and "device: `cuda:0`" in md


def test_gpu_pool_is_not_called_when_train_is_up_to_date(gpu_setup) -> None:
    main, pool = gpu_setup()
    forecast_pipeline(repo_dir=str(main), **FAST)

    forecast_pipeline(repo_dir=str(main), **FAST)

    assert len(pool.calls) == 1
    assert_dvc_clean(main)


def test_lost_gpu_worker_is_retried(gpu_setup) -> None:
    main, pool = gpu_setup(script=("crash", "run"))

    forecast_pipeline(repo_dir=str(main), **FAST)

    assert len(pool.calls) == 2
    assert_dvc_clean(main)


def test_run_no_gpu_worker_picks_up_fails_with_a_hint_and_is_not_retried(gpu_setup) -> None:
    main, pool = gpu_setup(script=("unpicked",))

    state = forecast_pipeline(repo_dir=str(main), **FAST, return_state=True)

    assert state.is_failed()
    assert len(pool.calls) == 1
    assert "Is a worker polling its pool? (prefect worker start --pool gpu)" in state.message


def test_worker_on_other_code_is_refused_and_dvc_lock_is_rolled_back(
    gpu_setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    main, pool = gpu_setup()
    real_call = pool.__call__

    def on_other_code(name: str, parameters: dict[str, Any], **kwargs: Any) -> Any:
        parameters = {**parameters, "workspace": dict(parameters["workspace"])}
        params = yaml.safe_load(parameters["workspace"]["params.yaml"])
        params["train"]["epochs"] += 1  # the worker trains with other params
        parameters["workspace"]["params.yaml"] = yaml.safe_dump(params, sort_keys=False)
        return real_call(name, parameters, **kwargs)

    monkeypatch.setattr(flows, "run_deployment", on_other_code)
    forecast_pipeline(repo_dir=str(main), stages=["ingest", "validate", "window"], **FAST)
    lock_before = (main / "dvc.lock").read_text()

    state = forecast_pipeline(repo_dir=str(main), stages=["train"], **FAST, return_state=True)

    assert state.is_failed()
    assert "adopting stage 'train' from the worker failed" in state.message
    assert '"train.epochs": "modified"' in state.message
    assert (main / "dvc.lock").read_text() == lock_before


# --------------------------------------------------------------------------- the real stages

# A copy of this working tree with a small half-hourly series: the e2e tests' pipeline checkout.
SMALL_PARAMS = {
    "data.path": "data/external/small.csv",
    "window.input_size": 48,
    "window.horizon": 12,
    "model.hidden_size": 8,
    "model.num_layers": 1,
    "train.epochs": 1,
    "train.batch_size": 64,
    "train.device": "cpu",
    "evaluate.seasonal_period": 48,
    "evaluate.plot_windows": 1,
}


def small_series_csv() -> str:
    """Four weeks of half-hourly demand: a daily cycle, a weekly one and noise (1,344 rows)."""
    ts = pd.date_range("2024-01-01", periods=4 * 7 * 48, freq="30min")
    t = np.arange(len(ts))
    rng = np.random.default_rng(0)
    demand = 30_000 + 5_000 * np.sin(2 * np.pi * t / 48) + 1_500 * np.sin(2 * np.pi * t / 336)
    demand += rng.normal(0, 300, len(ts))
    return pd.DataFrame({"timestamp": ts, "demand": demand.round(1)}).to_csv(index=False)


def copy_working_tree(dest: Path) -> Path:
    """The repo's tracked and untracked-but-not-ignored files (not tests/, not dvc.lock) as a fresh
    one-commit checkout, with small params and a small series."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        name = raw.decode()
        skip = name.startswith(("tests/", ".github/")) or name in ("dvc.lock", "params.yaml")
        if (REPO / name).is_file() and not skip:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    files = {"data/external/small.csv": small_series_csv()}
    return make_repo(dest, dvc_yaml=(REPO / "dvc.yaml").read_text(), params=SMALL_PARAMS, files=files)


def test_real_stages_rerun_what_changed_and_leave_dvc_clean(built_repo: BuiltRepo, tmp_path: Path) -> None:
    """The repo's own dvc.yaml and stages: a new train.epochs re-runs train, evaluate, register."""
    repo = tmp_path / "repo"
    shutil.copytree(built_repo.root, repo, symlinks=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = (repo / "metrics/train.json").read_text()

    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)

    assert state.is_completed(), state.message
    assert json.loads((repo / "metrics/train.json").read_text())["epochs"] == 1, before
    logs = flow_logs(state.state_details.flow_run_id)
    for stage in ("train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in logs, stage
    for stage in ("ingest", "validate", "window"):
        assert f"Running stage '{stage}'" not in logs, stage
    md = report_markdown(state.state_details.flow_run_id)
    assert "| LSTM |" in md and "| seasonal naive |" in md
    assert "version **" in md
    assert_dvc_clean(repo)
