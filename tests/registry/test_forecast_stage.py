"""The ``forecast`` stage on one series and on a panel of 3: which model it uses, the forecast.parquet
contract (no id column for one series), the plots, the MLflow log, where the chunks run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.helpers.mlflow_fixtures import Repo, fixture_tiny_repo, fixture_tiny_repo_template, register  # noqa: F401
from tests.helpers.series_repos import (  # noqa: F401
    ID,
    PANEL_IDS,
    H,
    fixture_panel_repo_template,
    fixture_series_repo,
    n_series,
)
from tsforecast.config import DataConfig
from tsforecast.errors import DataError
from tsforecast.forecasting import core, plots
from tsforecast.forecasting.forecast import choose_model, run_forecast
from tsforecast.forecasting.plots import unit_label


@pytest.fixture
def registered(series_repo: Repo) -> Repo:
    register(series_repo)
    return series_repo


def with_identity(repo: Repo, identity: str, champion_identity: str | None) -> None:
    """What the registry branch's register stage writes (convention 4)."""
    path = repo.paths.reports / "registered.json"
    reg = json.loads(path.read_text())
    reg.update(identity=identity, identity_fields={"target": "y"}, champion_identity=champion_identity)
    path.write_text(json.dumps(reg))


def id_columns(repo: Repo) -> list[str]:
    return [] if n_series(repo) == 1 else [ID]


def test_choose_model_follows_the_identity_rule() -> None:
    base = {"model_name": "m", "version": 3, "run_id": "r3", "identity": "abc"}
    assert choose_model(None).source == "local"
    old = choose_model({"model_name": "m", "version": 3, "champion_version": 2, "run_id": "r3"})
    assert old.source == "local" and "names no model identity" in old.reason and old.run_id == "r3"
    same = choose_model({**base, "champion_version": 2, "champion_identity": "abc"})
    assert (same.source, same.uri, same.run_id) == ("champion", "models:/m/2", None)
    mine = choose_model({**base, "champion_version": 3, "champion_identity": "abc"})
    assert (mine.uri, mine.run_id) == ("models:/m/3", "r3")
    other = choose_model({**base, "champion_version": 2, "champion_identity": "xyz"})
    assert other.source == "local" and "another task identity (xyz != abc)" in other.reason
    none = choose_model({**base, "champion_version": None, "champion_identity": None})
    assert none.source == "local" and none.reason == "m has no champion"


def test_forecast_contract_with_the_local_model_when_identities_are_missing(registered: Repo, caplog) -> None:
    cfg, paths = registered.cfg, registered.paths
    path = paths.reports / "registered.json"  # as written before task identities existed
    reg = json.loads(path.read_text())
    for key in ("identity", "identity_fields", "champion_identity"):
        reg.pop(key, None)
    path.write_text(json.dumps(reg))
    with caplog.at_level("INFO", logger="tsforecast.forecasting.forecast"):
        result = run_forecast(cfg.data, cfg.forecast, cfg.orchestration, paths)
    assert result.source == "local" and result.model == "models/model.pt" and result.horizon == H
    assert (
        "forecasting with the local model models/model.pt: reports/registered.json names no model identity"
        in (caplog.text)
    )
    out = pd.read_parquet(paths.forecasts / "forecast.parquet")
    assert list(out.columns) == [*id_columns(registered), "timestamp", "forecast", "lo_80", "hi_80"]
    assert len(out) == n_series(registered) * H
    validated = pd.read_parquet(paths.validated / "data.parquet")
    groups = [("", out)] if n_series(registered) == 1 else list(out.groupby(ID, sort=False))
    assert [sid for sid, _ in groups] == ([""] if n_series(registered) == 1 else PANEL_IDS)  # data order
    for sid, rows in groups:
        last = validated["timestamp"][validated[ID] == sid].max() if sid else validated["timestamp"].iloc[-1]
        assert list(rows["timestamp"]) == list(pd.date_range(last, periods=H + 1, freq="h")[1:])
    assert (out["lo_80"] <= out["forecast"]).all() and (out["forecast"] <= out["hi_80"]).all()
    assert (paths.plots / "future.png").stat().st_size > 10_000
    rows = json.loads((paths.plots / "future.json").read_text())
    assert [r["step"] for r in rows] == list(range(1, H + 1)) * n_series(registered)
    assert all((ID in r) == (n_series(registered) > 1) for r in rows)


def test_the_plots_show_the_first_series_in_data_order(
    panel_repo_template, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.series_repos import copy_repo

    repo = copy_repo(panel_repo_template, tmp_path / "repo", monkeypatch)
    monkeypatch.setattr(plots, "PLOTTED_SERIES", 2)
    run_forecast(repo.cfg.data, repo.cfg.forecast, repo.cfg.orchestration, repo.paths)
    rows = json.loads((repo.paths.plots / "future.json").read_text())
    assert [r[ID] for r in rows] == [sid for sid in PANEL_IDS[:2] for _ in range(H)]
    assert [r["step"] for r in rows[:H]] == list(range(1, H + 1))
    assert len(pd.read_parquet(repo.paths.forecasts / "forecast.parquet")) == 3 * H  # every series forecast


def test_forecast_uses_the_champion_of_this_identity_and_logs_to_its_run(registered: Repo) -> None:
    from mlflow import MlflowClient

    from tsforecast.registry.tracking import default_tracking_uri

    with_identity(registered, "abc", "abc")
    cfg, paths = registered.cfg, registered.paths
    result = run_forecast(
        cfg.data, cfg.forecast.model_copy(update={"levels": (50.0, 95.0)}), cfg.orchestration, paths
    )
    assert (result.source, result.model) == ("champion", "models:/tiny-lstm/1")
    out = pd.read_parquet(paths.forecasts / "forecast.parquet")
    assert list(out.columns) == [
        *id_columns(registered),
        "timestamp",
        "forecast",
        "lo_50",
        "hi_50",
        "lo_95",
        "hi_95",
    ]
    run_id = json.loads((paths.reports / "registered.json").read_text())["run_id"]
    assert result.mlflow_run == run_id
    logged = {a.path for a in MlflowClient(default_tracking_uri(paths)).list_artifacts(run_id, "forecast")}
    first = pd.Timestamp(out["timestamp"].iloc[0])
    assert f"forecast/forecast_{first:%Y%m%dT%H%M%S}.json" in logged
    assert {"forecast/forecast.parquet", "forecast/future.png"} <= logged


def test_forecast_of_another_identity_uses_the_local_model(registered: Repo) -> None:
    with_identity(registered, "abc", "xyz")
    cfg, paths = registered.cfg, registered.paths
    assert run_forecast(cfg.data, cfg.forecast, cfg.orchestration, paths).source == "local"


def test_forecast_uses_the_champion_the_register_stage_recorded(registered: Repo) -> None:
    cfg, paths = registered.cfg, registered.paths
    reg = json.loads((paths.reports / "registered.json").read_text())
    assert reg["champion_identity"] == reg["identity"]  # v1 of a new model name is its champion
    result = run_forecast(cfg.data, cfg.forecast, cfg.orchestration, paths)
    assert result.source == "champion"
    assert len(pd.read_parquet(paths.forecasts / "forecast.parquet")) == n_series(registered) * H


def test_the_stage_sends_the_chunks_to_the_configured_dask_address(
    series_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, paths = series_repo.cfg, series_repo.paths
    seen = {}
    real = core.map_series

    def record(fn, chunks, address=None, **kw):  # noqa: ANN001, ANN003
        seen.update(address=address, in_process=kw.get("in_process"), n=len(chunks))
        return real(fn, chunks, None, in_process=True)

    monkeypatch.setattr(core, "map_series", record)
    orch = cfg.orchestration.model_copy(update={"dask_address": "tcp://10.0.0.1:8786"})
    run_forecast(cfg.data, cfg.forecast, orch, paths)
    assert (seen["address"], seen["in_process"]) == ("tcp://10.0.0.1:8786", None) and seen["n"] >= 1


def test_a_model_of_another_id_column_is_named(series_repo: Repo) -> None:
    cfg, paths = series_repo.cfg, series_repo.paths
    other = "store" if cfg.data.id_column is None else None
    data = cfg.data.model_copy(update={"id_column": other})
    trained = cfg.data.id_column
    with pytest.raises(
        DataError,
        match=rf"data.id_column is {other!r} but the local model \(models/model.pt\) was trained with {trained!r}",
    ):
        run_forecast(data, cfg.forecast, cfg.orchestration, paths)
    assert not (paths.forecasts / "forecast.parquet").exists()


def test_value_axis_carries_the_unit_of_the_builtin_data() -> None:
    assert unit_label(DataConfig()) == "demand (MW)"
    assert unit_label(DataConfig(path="x.csv", target="load")) == "load"


def test_forecast_cli_without_a_model_is_a_one_line_error(series_repo: Repo, capsys) -> None:
    from tsforecast.cli import main

    (series_repo.paths.models / "model.pt").unlink()
    code = main(["forecast", "--root", str(series_repo.root)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "model.pt: model file not found; run `tsforecast train`" in err
    assert not (series_repo.paths.forecasts / "forecast.parquet").exists()
