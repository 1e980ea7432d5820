"""``tsforecast summary``: the last run's results read from the stages' files, defensively."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tsforecast.cli import main
from tsforecast.paths import Paths
from tsforecast.summary import build_summary

RUN_ID = "9ec26899d15a41dc9c5ea1ef02448bd1"


def evaluate_json(lstm: float = 0.0125, seasonal: float = 0.0156) -> dict[str, Any]:
    return {
        "mse_scaled": lstm,
        "mae_scaled": 0.0871,
        "mase": 0.9268,
        "n_windows": 759,
        "horizon": 48,
        "input_size": 336,
        "baselines": {
            "repeat_last": {"mse_scaled": 1.5685, "mae_scaled": 0.9807, "mase": 10.43},
            "seasonal_naive": {"mse_scaled": seasonal, "mae_scaled": 0.1005, "mase": 1.069},
        },
    }


def registered_json(**overrides: Any) -> dict[str, Any]:
    return {
        "model_name": "tsforecast-lstm",
        "version": 3,
        "aliases": ["champion"],
        "champion": True,
        "reason": "champion: v3: test mse_scaled 0.0125 beats champion v2's 0.013 on the same test windows",
        "run_id": RUN_ID,
        "experiment_id": "1",
        "tracking_uri": "sqlite:////somewhere/mlflow.db",
        "mse_scaled": 0.0125,
        "champion_version": 3,
        **overrides,
    }


def write(root: Path, rel: str, content: Any) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo after a full run: metrics, the register record, plots and Data Docs."""
    (tmp_path / "params.yaml").write_text("")
    write(tmp_path, "metrics/evaluate.json", evaluate_json())
    write(tmp_path, "reports/registered.json", registered_json())
    write(tmp_path, "reports/data_docs/index.html", "<html></html>")
    for name in ("forecast", "loss", "error_by_step"):
        write(tmp_path, f"plots/{name}.png", "png")
    return tmp_path


def summary(root: Path) -> str:
    return build_summary(Paths.from_root(root))


def test_the_lstm_and_both_baselines_are_shown_with_the_verdict(repo: Path) -> None:
    text = summary(repo)

    assert "Test metrics over 759 test windows (H=48, L=336)" in text
    lstm = next(line for line in text.splitlines() if line.strip().startswith("LSTM"))
    assert lstm.split()[1:] == ["0.0125", "0.0871", "0.9268"]
    assert any(line.split()[:2] == ["repeat_last", "1.569"] for line in text.splitlines())
    assert any(line.split()[:2] == ["seasonal_naive", "0.0156"] for line in text.splitlines())
    assert "The LSTM beats both baselines on mse_scaled (0.0125)" in text


def test_a_baseline_that_wins_is_named(repo: Path) -> None:
    write(repo, "metrics/evaluate.json", evaluate_json(lstm=0.02, seasonal=0.0156))

    text = summary(repo)

    assert "The LSTM (0.02) does not beat seasonal_naive (0.0156) on mse_scaled" in text
    assert "beats both" not in text


def test_the_gates_decision_says_version_alias_and_why(repo: Path) -> None:
    text = summary(repo)

    assert "Registry (MLflow): tsforecast-lstm v3 -> @champion" in text
    assert "why: champion: v3: test mse_scaled 0.0125 beats champion v2's 0.013" in text


def test_a_challenger_says_which_version_still_serves(repo: Path) -> None:
    write(
        repo,
        "reports/registered.json",
        registered_json(
            aliases=["challenger"], champion=False, champion_version=2, reason="challenger: v3: ..."
        ),
    )

    text = summary(repo)

    assert "tsforecast-lstm v3 -> @challenger" in text
    assert "the champion is v2: models:/tsforecast-lstm@champion still serves it" in text


def test_a_record_from_an_earlier_run_is_flagged(repo: Path) -> None:
    write(repo, "reports/registered.json", registered_json(mse_scaled=0.5))

    assert "this record is from an earlier run" in summary(repo)


def test_where_plots_data_docs_and_the_local_mlflow_ui_are(repo: Path) -> None:
    text = summary(repo)

    assert "plots/forecast.png, plots/error_by_step.png, plots/loss.png" in text
    assert "xdg-open plots/forecast.png" in text
    assert "reports/data_docs/index.html" in text
    assert "make mlflow-ui" in text
    assert f"--backend-store-uri sqlite:///{repo.resolve() / 'mlflow.db'}" in text
    assert f"http://127.0.0.1:5000/#/experiments/1/runs/{RUN_ID}" in text


def test_a_tracking_server_is_linked_directly(repo: Path) -> None:
    write(repo, "reports/registered.json", registered_json(tracking_uri="http://mlflow.example:5000/"))

    text = summary(repo)

    assert f"MLflow UI  http://mlflow.example:5000/#/experiments/1/runs/{RUN_ID}" in text
    assert "make mlflow-ui" not in text


def test_the_next_commands_are_listed(repo: Path) -> None:
    text = summary(repo)

    for cmd in ("dvc metrics diff", "dvc plots diff", "dvc exp run -S"):
        assert f"  {cmd}" in text


def test_missing_files_name_the_stage_to_run(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("")

    text = summary(tmp_path)

    assert "metrics/evaluate.json not found: the evaluate stage has not run - run `dvc repro`" in text
    assert (
        "reports/registered.json not found: the register stage has not run - run `dvc repro register`" in text
    )
    assert "reports/data_docs/index.html not found: the validate stage has not run" in text
    assert "no PNGs under plots/" in text


def test_a_damaged_file_is_named_not_raised(repo: Path) -> None:
    write(repo, "metrics/evaluate.json", "{not json")
    write(repo, "reports/registered.json", "[1, 2]")

    text = summary(repo)

    assert "metrics/evaluate.json unreadable (JSONDecodeError)" in text
    assert "reports/registered.json not a JSON object" in text


def test_metrics_without_baselines_still_print(repo: Path) -> None:
    write(repo, "metrics/evaluate.json", {"mse_scaled": 0.1})

    text = summary(repo)

    assert "repeat_last        (missing)" in text


def test_cli_prints_the_summary_and_exits_0(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "--root", str(repo)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("== tsforecast: summary ==")
    assert "tsforecast-lstm v3 -> @champion" in out


def test_summary_states_interval_coverage_backtest_and_the_forecast(repo: Path) -> None:
    import pandas as pd

    ev = {**evaluate_json(), "intervals": {"80": {"coverage": 0.849, "width_scaled": 0.262}}}
    write(repo, "metrics/evaluate.json", ev)
    cut = {"mse_scaled": 0.02, "baselines": {"seasonal_naive": {"mse_scaled": 0.03}}}
    lost = {"mse_scaled": 0.02, "baselines": {"seasonal_naive": {"mse_scaled": 0.01}}}
    write(
        repo,
        "metrics/backtest.json",
        {
            "n_cutoffs": 3,
            "mse_scaled": 0.0144,
            "baselines": {"seasonal_naive": {"mse_scaled": 0.016}},
            "by_cutoff": [cut, cut, lost],
        },
    )
    (repo / "forecasts").mkdir()
    pd.DataFrame(
        {
            "timestamp": pd.date_range("2000-08-28", periods=4, freq="30min"),
            "forecast": [1.0, 2, 3, 4],
            "lo_80": [0.0, 1, 2, 3],
            "hi_80": [2.0, 3, 4, 5],
        }
    ).to_parquet(repo / "forecasts/forecast.parquet")
    text = build_summary(Paths.from_root(repo))
    assert "80 % prediction intervals cover 84.9 % of the test values (nominal 80 %)" in text
    assert "Backtest over 3 origins (no refit): mse_scaled LSTM 0.0144, seasonal_naive 0.016" in text
    assert "the LSTM wins from 2 of 3 origins" in text
    assert (
        "forecasts/forecast.parquet: 4 steps 2000-08-28 00:00:00 .. 2000-08-28 01:30:00, intervals 80 %"
        in text
    )


def test_summary_names_the_stage_to_run_when_backtest_and_forecast_are_missing(repo: Path) -> None:
    text = build_summary(Paths.from_root(repo))
    assert "Backtest: metrics/backtest.json not found: run `dvc repro backtest`." in text
    assert "Forecast: forecasts/forecast.parquet not found: run `dvc repro forecast`." in text
