"""End to end against a real ``mlflow server`` on 127.0.0.1: register, browse, serve.

``tsforecast register`` (the command `dvc repro` runs) is pointed at the server with
``MLFLOW_TRACKING_URI``; the run, the version and the champion alias are read back with
the client, and the champion is served with ``mlflow models serve`` and queried over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.helpers.mlflow_fixtures import (  # noqa: F401
    BIN,
    E2E_MODEL,
    ServerRegistration,
    fixture_mlflow_server,
    fixture_server_registration,
    fixture_tiny_repo_template,
    free_port,
    run_cli,
    start_in_own_session,
    stop_process_group,
    wait_http,
)
from tests.helpers.series_repos import (  # noqa: F401
    E2E_PANEL_MODEL,
    ID,
    fixture_panel_repo_template,
    fixture_panel_server_registration,
)

pytestmark = pytest.mark.e2e

H = 6


def client(reg: ServerRegistration) -> MlflowClient:
    return MlflowClient(tracking_uri=reg.server.url, registry_uri=reg.server.url)


def artifact_paths(c: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in c.list_artifacts(run_id, path):
        out |= artifact_paths(c, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_register_records_the_run_on_the_server(server_registration: ServerRegistration) -> None:
    reg, c = server_registration, client(server_registration)
    assert reg.result["tracking_uri"] == reg.server.url
    run = c.get_run(reg.result["run_id"])
    assert run.info.status == "FINISHED"
    assert c.get_experiment(run.info.experiment_id).name == "tsforecast"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied through the server
    assert run.data.params["window.horizon"] == str(H)
    assert run.data.metrics["test_mse_scaled"] == pytest.approx(reg.result["mse_scaled"])
    assert "baseline_repeat_last_mse_scaled" in run.data.metrics
    epochs = json.loads((reg.repo.paths.plots / "loss.json").read_text())
    assert len(c.get_metric_history(run.info.run_id, "val_loss")) == len(epochs)
    assert {"plots/loss.png", "validation/validation.json", "config/params.yaml"} <= artifact_paths(
        c, run.info.run_id
    )
    assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["y (data/external/series.csv)"]
    assert "dvc checkout" in run.data.tags["tsforecast.reproduce"]


def test_register_creates_the_version_and_the_champion_alias(server_registration: ServerRegistration) -> None:
    reg, c = server_registration, client(server_registration)
    champion = c.get_model_version_by_alias(E2E_MODEL, "champion")
    assert int(champion.version) == reg.result["version"] == 1
    assert champion.run_id == reg.result["run_id"]
    assert champion.tags["tsforecast.fingerprint"] == reg.result["fingerprint"]
    assert reg.result["champion"] is True and reg.result["aliases"] == ["champion"]


def test_rerun_against_the_server_registers_no_duplicate(server_registration: ServerRegistration) -> None:
    reg = server_registration
    proc = run_cli("register", cwd=reg.repo.root, env=reg.server.env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((reg.repo.paths.reports / "registered.json").read_text())
    assert again["reused"] is True and again["version"] == reg.result["version"]
    assert len(client(reg).search_model_versions(f"name = '{E2E_MODEL}'")) == 1


def test_predict_cli_reads_the_champion_from_the_server(
    server_registration: ServerRegistration, tmp_path: Path
) -> None:
    reg = server_registration
    history = pd.read_parquet(reg.repo.paths.validated / "data.parquet").tail(30)
    history.to_csv(tmp_path / "history.csv", index=False)
    proc = run_cli(
        "predict", "--model", f"models:/{E2E_MODEL}@champion", "--input", "history.csv", "--output", "out.csv",
        "--tracking-uri", reg.server.url, cwd=tmp_path, env=reg.server.env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "out.csv")) == H


@pytest.fixture(params=[1, 3], ids=["one_series", "panel_of_3"])
def registration(request: pytest.FixtureRequest) -> tuple[ServerRegistration, str]:
    """(the registration on the server, its model name): one series, or a panel of 3."""
    if request.param == 1:
        return request.getfixturevalue("server_registration"), E2E_MODEL
    return request.getfixturevalue("panel_server_registration"), E2E_PANEL_MODEL


def _tail(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The last ``rows`` rows of each series."""
    return (
        frame.groupby(ID, sort=False).tail(rows) if ID in frame.columns else frame.tail(rows)
    ).reset_index(drop=True)


def test_the_champion_forecasts_a_datetime_frame_in_a_fresh_process(
    registration: tuple[ServerRegistration, str], tmp_path: Path
) -> None:
    """Issue 19: ``pyfunc.load_model("models:/<name>@champion").predict(df)`` with df from data/validated/."""
    import subprocess
    import sys

    reg, name = registration
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        f"m = mlflow.pyfunc.load_model('models:/{name}@champion')\n"
        "df = pd.read_parquet(sys.argv[1])\n"
        "out = m.predict(df)\n"
        "print(json.dumps({'dtype': str(df['timestamp'].dtype), 'rows': len(out), 'columns': list(out.columns)}))\n"
    )
    src = reg.repo.paths.validated / "data.parquet"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src)], cwd=tmp_path, env=reg.server.env(), capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    n = pd.read_parquet(src)[ID].nunique() if ID in got["columns"] else 1
    assert got["dtype"].startswith("datetime64") and got["rows"] == n * H
    assert got["columns"][-4:] == ["timestamp", "forecast", "lo_80", "hi_80"]


def test_served_champion_answers_invocations(
    registration: tuple[ServerRegistration, str], tmp_path: Path
) -> None:
    reg, name = registration
    port = free_port()
    log = tmp_path / "serve.log"
    args = [
        str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{name}@champion",
        "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1", "-w", "1",
    ]  # fmt: skip
    proc = start_in_own_session(args, env=reg.server.env(), cwd=tmp_path, log=log)  # PATH has .venv/bin
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/ping", proc, log, 180, "mlflow models serve")
        history = _tail(pd.read_parquet(reg.repo.paths.validated / "data.parquet"), 30)
        ids = [ID] if ID in history.columns else []
        n = history[ID].nunique() if ids else 1
        text = history.assign(timestamp=history["timestamp"].map(lambda t: t.isoformat()))
        payload = {"dataframe_split": {"columns": list(text.columns), "data": text.to_numpy().tolist()}}
        r = httpx.post(f"{url}/invocations", json=payload, timeout=60)
        assert r.status_code == 200, r.text[:2000]
        predictions = r.json()["predictions"]
        assert len(predictions) == n * H
        assert list(predictions[0]) == [*ids, "timestamp", "forecast", "lo_80", "hi_80"]
        assert all(p["lo_80"] <= p["forecast"] <= p["hi_80"] for p in predictions)
        first = pd.Timestamp(predictions[0]["timestamp"])
        assert first == _tail(history, 1)["timestamp"].iloc[0] + pd.Timedelta("1h")

        records = {
            "dataframe_records": history.assign(timestamp=history["timestamp"].astype(str)).to_dict("records")
        }
        r = httpx.post(f"{url}/invocations", json=records, timeout=60)
        assert r.status_code == 200, r.text[:2000]
        assert r.json()["predictions"] == predictions

        csv = history.to_csv(index=False)  # timestamps arrive as text: "2024-01-25 23:00:00"
        r = httpx.post(f"{url}/invocations", content=csv, headers={"Content-Type": "text/csv"}, timeout=60)
        assert r.status_code == 200, r.text[:2000]
        assert r.json()["predictions"] == predictions

        levels = {**payload, "params": {"levels": [50, 95]}}
        r = httpx.post(f"{url}/invocations", json=levels, timeout=60)
        assert r.status_code == 200, r.text[:2000]
        assert list(r.json()["predictions"][0]) == [
            *ids,
            "timestamp",
            "forecast",
            "lo_50",
            "hi_50",
            "lo_95",
            "hi_95",
        ]

        short = _tail(history, 5).to_csv(index=False)
        bad = httpx.post(
            f"{url}/invocations", content=short, headers={"Content-Type": "text/csv"}, timeout=60
        )
        assert bad.status_code == 400
        assert bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert bad.json()["message"] == (
            "model input: 5 row(s) given; the model needs at least input_size=24 rows "
            "(the most recent 24 steps at 'h') to forecast the next 6"
            if not ids
            else "model input: series s0 (5 rows), s1 (5 rows), s2 (5 rows) have fewer than input_size=24 rows; "
            "each series needs its most recent 24 steps at 'h'"
        )
        if ids:  # an id the model was not trained on: a 400 naming it
            stranger = _tail(history, 24)[lambda f: f[ID] == "s0"].assign(**{ID: "zz"}).to_csv(index=False)
            bad = httpx.post(
                f"{url}/invocations", content=stranger, headers={"Content-Type": "text/csv"}, timeout=60
            )
            assert bad.status_code == 400
            assert "1 series are not among the model's 3 known series: zz;" in bad.json()["message"]
    finally:
        stop_process_group(proc)
