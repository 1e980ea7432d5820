"""The MLflow UI of a real server shows the champion's realized accuracy over time (headless Chromium).

`tsforecast monitor` (the CLI, as the nightly deployment runs it) scores four archived forecasts
of a small checkout and logs them to the shared MLflow server; the UI's run page then charts
``realized_mse_scaled`` next to ``expected_upper``, one point per forecast origin. Screenshot:
``reports/mlflow_ui_realized.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.e2e.test_mlflow_ui_browser import SHOTS, browser, page  # noqa: F401
from tests.helpers.mlflow_fixtures import fixture_mlflow_server, run_cli  # noqa: F401
from tests.helpers.monitoring_fixtures import (
    archive,
    backtest_json,
    cfg_for,
    checkout,
    delivery,
    series_frame,
)
from tsforecast.io import write_json

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow]

ORIGINS = (400, 406, 412, 418)


@pytest.fixture(scope="module")
def realized_on_server(mlflow_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """monitor.json after `tsforecast monitor` logged four scored forecasts of v1 to the server."""
    cfg = cfg_for(1)
    frame = series_frame(n=480)
    paths = checkout(tmp_path_factory.mktemp("realized"), cfg, frame)
    backtest_json(paths, mse=0.004, cuts=(0.003, 0.004, 0.005, 0.006))
    write_json(paths.reports / "registered.json", {"version": 1, "champion": True, "champion_version": 1})
    errors = (0.2, 0.4, 0.3, 0.9)  # the last night went worse
    archive(
        paths, [delivery(frame, cfg, origin_row=r, error=e) for r, e in zip(ORIGINS, errors, strict=True)]
    )

    proc = run_cli("monitor", "--root", str(paths.root), cwd=paths.root, env=mlflow_server.env())

    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((paths.metrics / "monitor.json").read_text())
    assert report["mlflow"] and "error" not in report["mlflow"], report["mlflow"]
    return report


def test_the_realized_series_is_logged_to_the_server_one_point_per_origin(
    mlflow_server, realized_on_server
) -> None:
    run_id = realized_on_server["mlflow"]["champion_run"]
    client = MlflowClient(tracking_uri=mlflow_server.url)

    history = client.get_metric_history(run_id, "realized_mse_scaled")

    assert len(history) == len(ORIGINS)
    assert [m.value for m in sorted(history, key=lambda m: m.timestamp)] == pytest.approx(
        [o["mse_scaled"] for o in realized_on_server["by_origin"]]
    )
    assert client.get_run(run_id).info.run_name == "realized v1"


def test_the_ui_charts_the_realized_accuracy_against_the_expected_upper(
    page: Any,  # noqa: F811
    mlflow_server,
    realized_on_server,
) -> None:
    mlflow = realized_on_server["mlflow"]
    url = f"{mlflow_server.url}/#/experiments/{mlflow['experiment_id']}/runs/{mlflow['champion_run']}/model-metrics"

    page.goto(url)

    SHOTS.mkdir(exist_ok=True)
    shot = Path(SHOTS) / "mlflow_ui_realized.png"
    try:
        page.get_by_text("realized v1").first.wait_for(state="visible")
        page.get_by_text("expected_upper", exact=True).first.wait_for(state="visible")
        page.get_by_placeholder("Search metric charts").fill("realized")  # the charts of the realized series
        for metric in ("realized_mse_scaled", "realized_mae", "realized_coverage"):
            page.get_by_text(metric, exact=True).first.wait_for(state="visible")
        assert page.get_by_text("drift_level", exact=True).count() == 0, "the search shows only realized_*"
        page.wait_for_timeout(1500)  # the charts draw after their titles
    finally:
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
