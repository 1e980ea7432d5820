"""The nightly deployment on a real Prefect server and worker: two nights, both branches of the decision.

Night 1 (nothing trained yet): the monitor decides to train, the worker runs every DVC stage,
the gate makes v1 champion, the forecast is archived, `dvc status` is clean. Between the nights
the held-back horizon of rows arrives in the source file. Night 2: the monitor scores night 1's
forecast on those rows and keeps the champion (thresholds set wide for this test), the champion
forecasts in `.refresh/` and that delivery is archived too; DVC's workspace is untouched, so
`dvc status` names only ingest's changed source. The worker's decision is the one the monitoring
code makes in-process on the same inputs.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
NIGHTLY = "forecast-pipeline/forecast-nightly"
RUN_TIMEOUT_S = 900
H = 12  # SMALL_PARAMS' window.horizon


def _flow_helpers() -> ModuleType:
    """The checkout builders of tests/integration/test_flows.py (one definition of each)."""
    path = REPO / "tests" / "integration" / "test_flows.py"
    spec = importlib.util.spec_from_file_location("_tsforecast_nightly_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


helpers = _flow_helpers()


def _run(server, *params: str) -> str:
    args = ["deployment", "run", NIGHTLY, *[x for p in params for x in ("--param", p)]]
    match = re.search(r"UUID: ([0-9a-f-]{36})", server.cli(*args).stdout)
    assert match
    return match.group(1)


def _completed(server, run_id: str, logs: list[Path]) -> None:
    run = server.wait_for_flow_run(run_id, RUN_TIMEOUT_S, logs=logs)
    tails = "\n".join(log.read_text(errors="replace")[-6000:] for log in logs if log.exists())
    assert run["state"]["type"] == "COMPLETED", f"{run['state'].get('message')}\n{tails}"


def _artifact(server, run_id: str, key: str) -> str:
    found = server.api(
        "POST",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [key]}}},
    )
    assert found, f"no artifact {key} on flow run {run_id}"
    return str(found[0]["data"])


def _records(repo: Path, kind: str) -> list[dict]:
    return [
        json.loads(p.read_text()) | {"file": p.name}
        for p in sorted((repo / "forecasts/decisions").glob(f"*__{kind}__*.json"))
    ]


@pytest.fixture(scope="module")
def night_repo(prefect_server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """A small-params copy of this checkout whose source lacks its last H rows; deployed."""
    repo = helpers.copy_working_tree(tmp_path_factory.mktemp("nightly") / "repo")
    source = repo / "data/external/small.csv"
    full = pd.read_csv(source)
    full.iloc[:-H].to_csv(source, index=False)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # night 2 must keep the champion whatever a 1-epoch model scores: this test is about the plumbing
    params["monitor"] = {**params.get("monitor", {}), "band": 1000.0, "drift_level": 100.0,
                         "drift_scale": 100.0, "drift_profile": 100.0, "max_age": None}  # fmt: skip
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for pool in ("cpu", "gpu"):  # the session's server may have them from another module
        prefect_server.cli("work-pool", "create", pool, "--type", "process", check=False)
    prefect_server.cli("--no-prompt", "deploy", "--all", cwd=repo, timeout=300)
    return repo, full


def test_the_nightly_deployment_carries_retrain_on_evidence(prefect_server, night_repo) -> None:
    deployment = prefect_server.api("GET", f"/deployments/name/{NIGHTLY}")

    assert deployment["parameters"] == {"retrain": "on-evidence"}
    assert deployment["work_pool_name"] == "cpu"


def test_two_nights_on_a_worker_train_then_score_keep_and_archive(
    prefect_server, prefect_worker, night_repo
) -> None:
    repo, full = night_repo
    log = prefect_worker("cpu", repo, name="cpu-nightly")

    night1 = _run(prefect_server, "retry_backoff_s=1")
    _completed(prefect_server, night1, [log])

    monitor1 = json.loads((repo / "metrics/monitor.json").read_text())
    assert monitor1["decision"]["retrain"] and monitor1["decision"]["reasons"][0].startswith("no champion")
    [gate] = _records(repo, "gate")
    assert gate["retrain_ran"] and gate["champion"] and gate["version"] == 1
    [first] = sorted((repo / "forecasts/archive").glob("*.parquet"))
    assert set(pd.read_parquet(first)["model_version"]) == {"1"}
    helpers.assert_dvc_clean(repo)
    assert "# Nightly decision: retrain" in _artifact(prefect_server, night1, "monitor-report")

    full.to_csv(repo / "data/external/small.csv", index=False)  # the held-back day arrives
    night2 = _run(prefect_server, "retry_backoff_s=1")
    _completed(prefect_server, night2, [log])

    monitor2 = json.loads((repo / "metrics/monitor.json").read_text())
    assert not monitor2["decision"]["retrain"], monitor2["decision"]
    [scored] = monitor2["by_origin"]
    assert (scored["file"], scored["steps_observed"], scored["complete"]) == (first.name, H, True)
    arch = pd.read_parquet(first)
    truth = arch.merge(
        pd.read_csv(repo / "data/external/small.csv", parse_dates=["timestamp"]), on="timestamp"
    )
    assert scored["mae"] == pytest.approx(
        float(np.mean(np.abs(truth["demand"] - truth["forecast"]))), abs=1e-6
    )
    files = sorted((repo / "forecasts/archive").glob("*.parquet"))
    assert len(files) == 2 and set(pd.read_parquet(files[-1])["model_version"]) == {"1"}
    assert (repo / ".refresh/forecasts/forecast.parquet").is_file()
    assert len(_records(repo, "gate")) == 1, "no retrain, no gate"
    assert "# Nightly decision: keep the champion" in _artifact(prefect_server, night2, "monitor-report")
    status = json.loads(helpers._dvc(repo, "status", "--json") or "{}")
    assert list(status) == ["ingest"], status  # the rows the next retrain will take in
    _same_decision_in_process(repo, first, monitor2)
    _realized_in_mlflow(repo, monitor2)


def _same_decision_in_process(repo: Path, first: Path, worker_report: dict) -> None:
    """The monitoring code, in this process, on night 2's inputs reaches the worker's decision."""
    from tsforecast.config import load_config
    from tsforecast.io import read_json
    from tsforecast.monitoring.archive import read_archive
    from tsforecast.monitoring.expected import load_expected
    from tsforecast.monitoring.monitor import (
        fallback_champion,
        gather,
        read_newest,
        read_reference,
        read_training,
        resolve_period,
    )
    from tsforecast.monitoring.types import archive_dir
    from tsforecast.paths import Paths

    cfg, paths = load_config(repo / "params.yaml"), Paths.from_root(repo)
    archive, _ = read_archive(archive_dir(paths), cfg.data)
    archive = archive[archive["file"] == first.name]  # what the archive held when night 2's monitor ran
    registered = read_json(paths.reports / "registered.json")
    decisions = [r for r in _records(repo, "decision") if r["data_end"] != worker_report["data_end"]]
    newest = read_newest(cfg.data, repo / ".refresh/data/validated")
    period = resolve_period(cfg.evaluate.seasonal_period, read_training(paths), newest.attrs["freq"])
    ev = gather(
        archive, newest, read_reference(paths),
        lambda c: load_expected(paths, c, registered, cfg.register.model_name, cfg.monitor.band),
        cfg.data, period, cfg.monitor, decisions, fallback_champion(paths, registered),
    )  # fmt: skip
    assert ev.decision.to_dict()["reasons"] == worker_report["decision"]["reasons"]


def _realized_in_mlflow(repo: Path, report: dict) -> None:
    """The worker logged night 1's forecast, now complete, as one point of the champion's realized run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    history = client.get_metric_history(report["mlflow"]["champion_run"], "realized_mse_scaled")
    assert [m.value for m in history] == [pytest.approx(report["by_origin"][0]["mse_scaled"])]
