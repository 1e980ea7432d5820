"""Delivering forecasts: the nightly flow's table artifact and the forecast-refresh flow.

The flow tests use the stand-in pipeline of test_flows.py plus a stand-in `forecast` stage
(until the forecast branch is merged), and one test runs the real stages; it is skipped while
`tsforecast forecast` does not exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect.artifacts import Artifact
from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness

import pipelines.delivery as delivery
from pipelines.delivery import (
    FORECAST_KEY,
    REFRESH_DIR,
    cli_stage,
    forecast_summary,
    read_forecast,
    refresh_root,
    table_rows,
)
from pipelines.dvc_runner import StageFailed
from pipelines.flows import forecast_pipeline, forecast_refresh
from tests.integration import test_flows as helpers

FAST = {"retries": 2, "retry_backoff_s": 0.05}
H = 4
LOG = __import__("logging").getLogger("test")


def _forecast_frame(start: str, n: int = H) -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="30min")
    f = pd.Series(range(n), dtype="float64") + 100.0
    return pd.DataFrame({"timestamp": ts, "forecast": f, "lo_80": f - 5, "hi_80": f + 5})


# --------------------------------------------------------------------------- helpers, no Prefect


def test_read_forecast_names_the_missing_contract_columns(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pd.DataFrame({"time": [1], "yhat": [2.0]}).to_parquet(path)
    with pytest.raises(
        ValueError, match=r"column\(s\) \['timestamp', 'forecast'\] not found; .*\['time', 'yhat'\]"
    ):
        read_forecast(path)


def test_table_rows_write_timestamps_as_iso_text_and_stop_at_max_rows() -> None:
    frame = _forecast_frame("2024-01-01 00:00", n=10)
    rows = table_rows(frame, max_rows=3)
    assert rows[0] == {"timestamp": "2024-01-01T00:00:00", "forecast": 100.0, "lo_80": 95.0, "hi_80": 105.0}
    assert len(rows) == 3
    json.dumps(rows)


def test_forecast_summary_has_the_path_relative_to_the_checkout(tmp_path: Path) -> None:
    frame = _forecast_frame("2024-01-01 00:00")
    summary = forecast_summary(frame, tmp_path / "forecasts" / "forecast.parquet", tmp_path)
    assert summary == {
        "path": "forecasts/forecast.parquet",
        "rows": H,
        "first": "2024-01-01T00:00:00",
        "last": "2024-01-01T01:30:00",
        "columns": ["timestamp", "forecast", "lo_80", "hi_80"],
        "artifact_key": FORECAST_KEY,
    }


def _checkout(root: Path, data_path: str = "data/external/series.csv") -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "model.pt").write_text("v1")
    (root / "reports").mkdir()
    (root / "reports" / "registered.json").write_text('{"version": 1}')
    (root / "mlflow.db").write_text("db")
    (root / "params.yaml").write_text(yaml.safe_dump({"data": {"path": data_path, "target": "y"}}))
    return root


def test_refresh_root_gets_params_with_an_absolute_data_path_and_copies_of_the_model(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "repo")

    scratch = refresh_root(root)

    assert scratch == root / REFRESH_DIR
    params = yaml.safe_load((scratch / "params.yaml").read_text())
    assert params["data"] == {"path": str(root.resolve() / "data/external/series.csv"), "target": "y"}
    assert (scratch / "models" / "model.pt").read_text() == "v1"
    assert not (scratch / "models").is_symlink(), "a copy: a nightly run may replace models/ meanwhile"
    assert json.loads((scratch / "reports" / "registered.json").read_text()) == {"version": 1}
    assert (scratch / "mlflow.db").is_symlink() and (scratch / "mlflow.db").read_text() == "db"


def test_refresh_root_takes_the_newest_model_each_time_and_keeps_its_own_data(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "repo")
    scratch = refresh_root(root)
    (scratch / "models" / "stale.pt").write_text("old")
    (scratch / "data" / "raw").mkdir(parents=True)
    (root / "models" / "model.pt").write_text("v2")

    refresh_root(root)

    assert (scratch / "models" / "model.pt").read_text() == "v2"
    assert not (scratch / "models" / "stale.pt").exists()
    assert (scratch / "data" / "raw").is_dir()


def test_refresh_root_leaves_a_builtin_data_path_alone(tmp_path: Path) -> None:
    root = _checkout(tmp_path / "repo", data_path="builtin:taylor")
    params = yaml.safe_load((refresh_root(root) / "params.yaml").read_text())
    assert params["data"]["path"] == "builtin:taylor"


@pytest.mark.parametrize(("code", "transient"), [(75, True), (1, False)])
def test_cli_stage_retries_exit_code_75_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, transient: bool
) -> None:
    script = tmp_path / "cli.py"
    script.write_text(
        f"import sys\nprint('error: the registry said no', file=sys.stderr)\nsys.exit({code})\n"
    )
    monkeypatch.setattr(delivery, "CLI", (sys.executable, str(script)))

    with pytest.raises(StageFailed) as e:
        cli_stage(tmp_path, "forecast", LOG)

    assert e.value.transient is transient
    assert f"stage 'forecast' in {tmp_path} failed (exit {code}" in str(e.value)
    assert "error: the registry said no" in str(e.value)


# --------------------------------------------------------------------------- flows (stand-in stages)

STAND_IN_CLI = (
    textwrap.dedent(
        '''
    """Stand-in for `tsforecast ingest|validate|forecast [--root R]`: R/data/... and R/forecasts/.

    ingest takes STANDIN_N values (default 480, "new data" when more); forecast writes H rows
    after the last validated step, from the model in R/models/model.json (it must be there).
    """
    import json, os, sys
    from pathlib import Path

    import pandas as pd

    H = 4
    stage = sys.argv[1]
    root = Path(sys.argv[sys.argv.index("--root") + 1]) if "--root" in sys.argv else Path.cwd()

    def read(path):
        return json.loads((root / path).read_text())

    def write(path, data):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(json.dumps(data))

    if stage == "ingest":
        write("data/raw/data.json", {"values": [float(i % 48) for i in range(int(os.environ.get("STANDIN_N", 480)))]})
    elif stage == "validate":
        write("data/validated/data.json", read("data/raw/data.json"))
    elif stage == "forecast":
        if not (root / "models/model.json").is_file():
            print(f"error: {root}/models/model.json not found; run the pipeline first", file=sys.stderr)
            sys.exit(1)
        model = read("models/model.json")
        n = len(read("data/validated/data.json")["values"])
        ts = pd.date_range("2024-01-01", periods=n + H, freq="30min")[n:]
        f = pd.Series([float(model["n"])] * H)
        frame = pd.DataFrame({"timestamp": ts, "forecast": f, "lo_80": f - 1, "hi_80": f + 1})
        (root / "forecasts").mkdir(parents=True, exist_ok=True)
        frame.to_parquet(root / "forecasts" / "forecast.parquet", index=False)
    print(f"{stage}: done")
    '''
    )
    .lstrip()
    .replace("H rows", f"{H} rows")
    .replace("+ H", f"+ {H}")
    .replace("* H", f"* {H}")
)

FORECAST_STAGE_YAML = (
    "  forecast:\n"
    "    cmd: python standin_cli.py forecast\n"
    "    deps: [standin_cli.py, models/model.json, data/validated]\n"
    "    outs: [forecasts/forecast.parquet]\n"
)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway Prefect API and database for the flow tests (~10 s to start)."""
    home = tmp_path_factory.mktemp("prefect-home")
    with temporary_settings(updates={PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api) -> Path:
    """The stand-in pipeline with a forecast stage; the refresh's CLI is the stand-in too."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("STANDIN_N", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    script = tmp_path / "repo" / "standin_cli.py"
    monkeypatch.setattr(delivery, "CLI", (sys.executable, str(script)))
    return helpers.make_repo(
        tmp_path / "repo",
        dvc_yaml=helpers.STAND_IN_DVC_YAML + FORECAST_STAGE_YAML,
        files={
            "stage.py": helpers.STAND_IN_STAGE,
            "standin_cli.py": STAND_IN_CLI,
            ".gitignore": ".standin/\n.dvc-storage/\n/.refresh/\n",
        },
    )


def _latest_forecast_artifact() -> list[dict]:
    found = Artifact.get(FORECAST_KEY)
    assert found is not None, "no 'forecast' artifact"
    assert found.type == "table"
    data = json.loads(found.data) if isinstance(found.data, str) else found.data
    return data


def _git_status(repo: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
def test_nightly_pipeline_ends_by_publishing_the_forecast_table_and_names_the_file(stand_in: Path) -> None:
    state = forecast_pipeline(repo_dir=str(stand_in), **FAST, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["stages"][-1] == "forecast"
    assert result["forecast"]["path"] == "forecasts/forecast.parquet" and result["forecast"]["rows"] == H
    rows = _latest_forecast_artifact()
    assert [r["timestamp"] for r in rows] == [
        f"2024-01-11T{h:02d}:{m:02d}:00" for h, m in ((0, 0), (0, 30), (1, 0), (1, 30))
    ]
    assert all(r["lo_80"] <= r["forecast"] <= r["hi_80"] for r in rows)
    md = helpers.report_markdown(state.state_details.flow_run_id)
    assert "## Forecast" in md
    assert "- `forecasts/forecast.parquet`: 4 rows, 2024-01-11T00:00:00 .. 2024-01-11T01:30:00" in md
    assert "table artifact `forecast`" in md
    helpers.assert_dvc_clean(stand_in)


@pytest.mark.slow
def test_refresh_forecasts_new_data_with_the_trained_model_and_leaves_dvc_and_git_as_they_were(
    stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forecast_pipeline(repo_dir=str(stand_in), **FAST)
    nightly = (stand_in / "forecasts" / "forecast.parquet").read_bytes()
    git_before = _git_status(stand_in)
    monkeypatch.setenv("STANDIN_N", "490")  # ten new half-hours arrived

    result = forecast_refresh(repo_dir=str(stand_in), **FAST)

    assert result["stages"] == ["ingest", "validate", "forecast"]
    assert result["root"] == str(stand_in / REFRESH_DIR)
    assert result["forecast"]["path"] == ".refresh/forecasts/forecast.parquet"
    refreshed = pd.read_parquet(stand_in / REFRESH_DIR / "forecasts" / "forecast.parquet")
    assert refreshed["timestamp"].iloc[0] == pd.Timestamp("2024-01-01") + 490 * pd.Timedelta("30min")
    assert (refreshed["forecast"] == 480.0).all(), "the nightly model (trained on 480 values), not a new one"
    assert helpers.runs(stand_in, "train") == 1, "the refresh must not train"
    assert [r["timestamp"] for r in _latest_forecast_artifact()][0] == "2024-01-11T05:00:00"
    assert (stand_in / "forecasts" / "forecast.parquet").read_bytes() == nightly
    helpers.assert_dvc_clean(stand_in)
    assert _git_status(stand_in) == git_before, "the refresh leaves git as it was (.refresh/ is ignored)"


@pytest.mark.slow
def test_refresh_stage_error_fails_the_flow_naming_it_without_retries(
    stand_in: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git_before = _git_status(stand_in)

    state = forecast_refresh(repo_dir=str(stand_in), **FAST, return_state=True)  # no model trained yet

    assert state.is_failed()
    scratch = stand_in / REFRESH_DIR
    assert f"stage 'forecast' in {scratch} failed (exit 1, not retried)" in state.message
    assert f"error: {scratch}/models/model.json not found; run the pipeline first" in state.message
    assert not (stand_in / "data" / "raw").exists(), "the refresh writes its data under .refresh/ only"
    assert _git_status(stand_in) == git_before


# --------------------------------------------------------------------------- flows (real stages)


def _forecast_stage_missing() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "tsforecast", "forecast", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode != 0


@pytest.mark.slow
@pytest.mark.skipif(_forecast_stage_missing(), reason="needs the forecast stage (forecast branch)")
def test_real_refresh_after_the_pipeline_publishes_h_rows_after_the_data_and_leaves_dvc_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    repo = helpers.copy_working_tree(tmp_path / "repo")
    state = forecast_pipeline(repo_dir=str(repo), **FAST, return_state=True)
    assert state.is_completed(), state.message

    result = forecast_refresh(repo_dir=str(repo), **FAST)

    horizon = helpers.SMALL_PARAMS["window.horizon"]
    frame = pd.read_parquet(repo / REFRESH_DIR / "forecasts" / "forecast.parquet")
    data = pd.read_csv(repo / "data" / "external" / "small.csv", parse_dates=["timestamp"])
    assert len(frame) == horizon and result["forecast"]["rows"] == horizon
    assert frame["timestamp"].iloc[0] == data["timestamp"].iloc[-1] + pd.Timedelta("30min")
    assert (frame["lo_80"] <= frame["forecast"]).all() and (frame["forecast"] <= frame["hi_80"]).all()
    rows = _latest_forecast_artifact()
    assert len(rows) == horizon and {"timestamp", "forecast", "lo_80", "hi_80"} <= set(rows[0])
    helpers.assert_dvc_clean(repo)
