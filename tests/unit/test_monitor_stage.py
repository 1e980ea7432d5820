"""monitoring/monitor.py: `tsforecast monitor` on a small checkout (files in, files out; MLflow in one slow test)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.monitoring_fixtures import (
    H,
    archive,
    backtest_json,
    cfg_for,
    checkout,
    delivery,
    series_frame,
)
from tsforecast import cli
from tsforecast.io import write_json
from tsforecast.monitoring.monitor import record_gate, run_monitor
from tsforecast.monitoring.records import read_records
from tsforecast.monitoring.types import decisions_dir
from tsforecast.paths import Paths

CONTRACT = {"n_scored", "by_origin", "expected", "drift", "decision"}
ORIGIN_KEYS = ["origin", "model_version", "steps_observed", "mae", "mse_scaled", "coverage"]


def _monitor(paths: Paths, cfg, track: bool = False):
    return run_monitor(cfg.data, cfg.evaluate, cfg.forecast, cfg.monitor, cfg.register, paths, track=track)


def _report(paths: Paths) -> dict:
    return json.loads((paths.metrics / "monitor.json").read_text())


@pytest.fixture
def scored(tmp_path: Path) -> tuple[Paths, object, pd.DataFrame]:
    """A checkout whose archive holds three forecasts of v1, all arrived, each off by 0.3."""
    cfg = cfg_for(1)
    frame = series_frame(n=480)
    paths = checkout(tmp_path, cfg, frame)
    backtest_json(paths, mse=0.01)
    write_json(paths.reports / "registered.json", {"version": 1, "champion": True, "champion_version": 1})
    archive(paths, [delivery(frame, cfg, origin_row=r, error=0.3) for r in (400, 406, 412)])
    return paths, cfg, frame


def test_monitor_json_has_the_contract_keys_and_one_entry_per_scored_forecast(scored) -> None:
    paths, cfg, _ = scored

    result = _monitor(paths, cfg)

    report = _report(paths)
    assert CONTRACT <= set(report)
    assert report["n_scored"] == 3 and result.n_scored == 3
    assert [list(o)[:6] for o in report["by_origin"]] == [ORIGIN_KEYS] * 3
    first = report["by_origin"][0]
    assert (first["origin"], first["model_version"], first["steps_observed"]) == (
        "2024-01-17T16:00:00",
        "1",
        H,
    )
    assert first["mae"] == pytest.approx(0.3) and first["coverage"] == 1.0 and first["coverage_level"] == "80"
    assert set(report["expected"]) >= {"mse_scaled", "upper"}
    assert set(report["decision"]) >= {"retrain", "reasons"}
    assert report["drift"]["n_series"] == 1 and report["champion"]["model_version"] == "1"


def test_monitor_writes_the_per_series_detail_the_plot_and_a_decision_record(scored) -> None:
    paths, cfg, _ = scored

    _monitor(paths, cfg)

    detail = pd.read_parquet(paths.metrics / "monitor_by_series.parquet")
    assert len(detail) == 3 and set(detail["series"]) == {"y"}
    assert (paths.plots / "monitor.png").stat().st_size > 10_000
    [record] = read_records(decisions_dir(paths), "decision")
    assert record["decision"] == _report(paths)["decision"]


def test_forecasts_far_outside_the_band_for_two_origins_decide_a_retrain(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame(n=480)
    paths = checkout(tmp_path, cfg, frame)
    backtest_json(paths, mse=0.01)
    write_json(paths.reports / "registered.json", {"version": 1, "champion": True, "champion_version": 1})
    archive(
        paths, [delivery(frame, cfg, origin_row=r, error=e) for r, e in ((400, 0.3), (406, 9.0), (412, 9.0))]
    )

    result = _monitor(paths, cfg)

    assert result.retrain
    assert any(
        r.startswith("realized mse_scaled") and "for 2 origin(s) in a row" in r for r in result.reasons
    )


def test_an_empty_archive_with_no_model_decides_to_train_one(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    paths = checkout(tmp_path, cfg, series_frame(n=480))

    result = _monitor(paths, cfg)

    assert result.retrain and result.n_scored == 0
    assert result.reasons == ["no champion: no forecast has been delivered yet, so train one"]
    report = _report(paths)
    assert CONTRACT <= set(report) and report["by_origin"] == []
    assert report["expected"]["mse_scaled"] is None and report["expected"]["upper"] is None


def test_a_registered_champion_that_delivered_nothing_yet_is_kept(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    paths = checkout(tmp_path, cfg, series_frame(n=480))
    write_json(paths.reports / "registered.json", {"version": 4, "champion_version": 4})

    result = _monitor(paths, cfg)

    assert not result.retrain and result.champion == "4"


def test_the_gate_verdict_is_recorded_beside_the_decision(scored) -> None:
    paths, cfg, _ = scored
    _monitor(paths, cfg)
    time.sleep(0.01)
    write_json(paths.reports / "registered.json", {"version": 2, "champion": False, "champion_version": 1,
                                                   "reason": "challenger: v2 does not beat v1"})  # fmt: skip

    gate = record_gate(cfg.register, cfg.monitor, paths, track=False)

    assert gate["retrain_ran"] and gate["version"] == 2 and not gate["champion"]
    [record] = read_records(decisions_dir(paths), "gate")
    assert record["reason"] == "challenger: v2 does not beat v1"
    assert record["decision_file"] == read_records(decisions_dir(paths), "decision")[0]["file"]


def test_a_retrain_that_registered_nothing_is_recorded_as_such(scored) -> None:
    paths, cfg, _ = scored
    old = time.time() - 3600
    os.utime(paths.reports / "registered.json", (old, old))
    _monitor(paths, cfg)

    gate = record_gate(cfg.register, cfg.monitor, paths, track=False)

    assert not gate["retrain_ran"] and not gate["champion"]
    assert gate["reason"] == "nothing was retrained: the training stages were up to date"


def test_the_monitor_command_prints_the_decision_and_a_summary(
    scored, capsys: pytest.CaptureFixture[str]
) -> None:
    paths, _, _ = scored

    code = cli.main(["monitor", "--root", str(paths.root), "--no-mlflow"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("keep: keep the champion: champion v1 delivers the forecasts")
    assert "monitor: n_archived=3, n_scored=3, champion=1" in out


@pytest.mark.slow
def test_realized_accuracy_goes_to_mlflow_once_per_origin_and_the_archive_is_shared(scored, tmp_path: Path,
                                                                                    monkeypatch) -> None:  # fmt: skip
    from mlflow import MlflowClient

    from tsforecast.monitoring.mlflow_log import pull_archive, to_ms
    from tsforecast.monitoring.types import archive_dir

    paths, cfg, frame = scored
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = _monitor(paths, cfg, track=True)
    archive(paths, [delivery(frame, cfg, origin_row=418, error=0.3)])
    _monitor(paths, cfg, track=True)  # a second night: one more origin, nothing logged twice

    client = MlflowClient(tracking_uri=f"sqlite:///{paths.mlflow_db}")
    history = client.get_metric_history(first.mlflow_run, "realized_mse_scaled")
    origins = [pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h) for h in (400, 406, 412, 418)]
    assert sorted(m.timestamp for m in history) == [to_ms(o) for o in origins]
    assert sorted(m.step for m in history) == [0, 1, 2, 3]
    for key in ("expected_upper", "realized_mae", "realized_mase", "realized_coverage", "pooled_mse_scaled"):
        assert len(client.get_metric_history(first.mlflow_run, key)) == 4, key
    run = client.get_run(first.mlflow_run)
    assert run.info.run_name == "realized v1" and "retrain" in run.data.metrics

    elsewhere = tmp_path / "other-machine" / "archive"
    pulled = pull_archive(paths, cfg.monitor, elsewhere)
    assert sorted(p.name for p in pulled) == sorted(p.name for p in archive_dir(paths).glob("*.parquet"))
