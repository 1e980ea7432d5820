"""End to end on a real Prefect server: pools, `prefect deploy --all`, workers, deployment runs.

The server (conftest.py) and the workers are real processes on 127.0.0.1. The pipeline runs
in temporary checkouts: a copy of this working tree with small params, and for the GPU-pool
hand-off the stand-in pipeline of tests/integration/test_flows.py with a git clone as the
"GPU host" that shares only the DVC remote.
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pipelines.dvc_runner import stage_plan
from pipelines.run_report import read_registered
from tsforecast.stages import NAMES as PIPELINE_ORDER

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 600
PIPELINE = "forecast-pipeline"


def _load_integration_helpers() -> ModuleType:
    """The checkout builders of tests/integration/test_flows.py (one definition of each)."""
    path = REPO / "tests" / "integration" / "test_flows.py"
    spec = importlib.util.spec_from_file_location("_tsforecast_flow_test_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _load_integration_helpers()


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pools `cpu` and `gpu` (first: deploy skips a deployment whose pool is missing), then
    `prefect deploy --all` from a small-params copy of this checkout; returns that copy."""
    repo = helpers.copy_working_tree(tmp_path_factory.mktemp("pipeline") / "repo")
    for pool in ("cpu", "gpu"):
        prefect_server.cli(
            "work-pool", "create", pool, "--type", "process", "--overwrite"
        )  # the session server may hold it already
    prefect_server.cli("--no-prompt", "deploy", "--all", cwd=repo, timeout=300)
    return repo


def deployment(server, name: str) -> dict[str, Any]:
    return server.api("GET", f"/deployments/name/{name}")


def run_deployment_cli(server, name: str, *params: str) -> str:
    """``prefect deployment run <name>``; returns the new flow run's id."""
    args = ["deployment", "run", name]
    for p in params:
        args += ["--param", p]
    out = server.cli(*args).stdout
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1)


def flow_runs(server, deployment_id: str, state_types: list[str] | None = None) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"deployments": {"id": {"any_": [deployment_id]}}}
    if state_types:
        body["flow_runs"] = {"state": {"type": {"any_": state_types}}}
    return server.api("POST", "/flow_runs/filter", body)


def artifact(server, flow_run_id: str, key: str) -> Any:
    found = server.api(
        "POST",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}, "key": {"any_": [key]}}},
    )
    assert found, f"no artifact '{key}' on flow run {flow_run_id}"
    return found[0]["data"]


def assert_completed(run: dict[str, Any], logs: list[Path]) -> None:
    """The run completed; if not, show its state message and the end of each worker's log."""
    state = run["state"]
    shown = "\n\n".join(f"--- {log.name}\n{_tail(log)}" for log in logs)
    assert state["type"] == "COMPLETED", f"{state['type']}: {state.get('message')}\n{shown}"


def _tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def test_deployments_sit_on_their_pools(prefect_server, deployed: Path) -> None:
    pools = {name: deployment(prefect_server, name)["work_pool_name"] for name in (
        f"{PIPELINE}/forecast-nightly", f"{PIPELINE}/forecast-on-demand", "train-gpu/train-gpu",
        "forecast-refresh/forecast-refresh")}  # fmt: skip
    assert pools == {
        f"{PIPELINE}/forecast-nightly": "cpu",
        f"{PIPELINE}/forecast-on-demand": "cpu",
        "train-gpu/train-gpu": "gpu",
        "forecast-refresh/forecast-refresh": "cpu",
    }
    assert deployment(prefect_server, f"{PIPELINE}/forecast-on-demand")["schedules"] == []
    [hourly] = deployment(prefect_server, "forecast-refresh/forecast-refresh")["schedules"]
    assert hourly["schedule"]["cron"] == "30 * * * *" and hourly["active"] is True


def test_forecast_nightly_carries_its_cron_schedule_and_the_server_scheduled_runs(
    prefect_server, deployed
) -> None:
    nightly = deployment(prefect_server, f"{PIPELINE}/forecast-nightly")
    expected = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"][0]["schedules"][0]

    [schedule] = nightly["schedules"]
    assert schedule["active"] is True
    assert schedule["schedule"]["cron"] == expected["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == expected["timezone"] == "Europe/London"
    deadline = time.monotonic() + 60  # the scheduler service creates them at once, checks every few s
    while not (scheduled := flow_runs(prefect_server, nightly["id"], ["SCHEDULED"])):
        assert time.monotonic() < deadline, "the server scheduled no runs of forecast-nightly"
        time.sleep(1)
    starts = sorted(r["next_scheduled_start_time"] or r["expected_start_time"] for r in scheduled)
    assert all(s > time.strftime("%Y-%m-%dT%H:%M", time.gmtime()) for s in starts)


def test_forecast_on_demand_completes_registers_a_new_version_and_leaves_dvc_clean(
    prefect_server, prefect_worker, deployed: Path
) -> None:
    assert stage_plan(deployed) == list(PIPELINE_ORDER)
    import mlflow

    started_ms = int(time.time() * 1000)
    worker_log = prefect_worker("cpu", deployed, name="cpu-e2e")

    run_id = run_deployment_cli(prefect_server, f"{PIPELINE}/forecast-on-demand", "retry_backoff_s=1")
    run = prefect_server.wait_for_flow_run(run_id, RUN_TIMEOUT_S, logs=[worker_log])

    assert_completed(run, [worker_log])
    helpers.assert_dvc_clean(deployed)
    registered = read_registered(deployed)
    assert registered is not None, "the register stage left no reports/registered.json"
    uri = registered.get("tracking_uri") or "sqlite:///mlflow.db"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{deployed / uri.removeprefix('sqlite:///')}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    version = client.get_model_version(registered["model_name"], str(registered["version"]))
    assert version.run_id == registered["run_id"]
    assert version.creation_timestamp >= started_ms, "the version must be new, from this run"
    report = artifact(prefect_server, run_id, "forecast-report")
    assert f"version **{registered['version']}**" in report and "| LSTM |" in report


def test_train_gpu_runs_on_a_gpu_pool_worker_and_hands_back_through_the_dvc_remote(
    prefect_server, prefect_worker, deployed: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "shared-dvc-remote"
    code = {f"pipelines/{p.name}": p.read_text() for p in (REPO / "pipelines").glob("*.py")}
    code["prefect.yaml"] = (REPO / "prefect.yaml").read_text()
    main = helpers.stand_in_repo(
        tmp_path / "pipeline-host", remote=remote, files=code, **{"orchestration.train_pool": "gpu"}
    )
    gpu_host = tmp_path / "gpu-host"
    helpers._git(tmp_path, "clone", "-q", str(main), str(gpu_host))
    cpu_log = prefect_worker("cpu", main, name="cpu-handoff")
    gpu_log = prefect_worker("gpu", gpu_host, name="gpu-handoff", env={"STANDIN_DEVICE": "cuda:0"})

    run_id = run_deployment_cli(prefect_server, f"{PIPELINE}/forecast-on-demand", "retry_backoff_s=1")
    run = prefect_server.wait_for_flow_run(run_id, RUN_TIMEOUT_S, logs=[cpu_log, gpu_log])

    assert_completed(run, [cpu_log, gpu_log])
    assert helpers.runs(main, "train") == 0 and helpers.runs(gpu_host, "train") == 1
    model = json.loads((main / "models" / "model.json").read_text())
    assert model["trained_in"] == str(gpu_host)
    helpers.assert_dvc_clean(main)
    train_gpu = deployment(prefect_server, "train-gpu/train-gpu")
    [gpu_run] = flow_runs(prefect_server, train_gpu["id"], ["COMPLETED"])
    handoff = artifact(prefect_server, gpu_run["id"], "train-gpu-handoff")
    record = json.loads(handoff) if isinstance(handoff, str) else handoff
    assert record["device"] == "cuda:0"
    assert "device: `cuda:0`" in artifact(prefect_server, run_id, "forecast-report")
