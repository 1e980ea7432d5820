"""`dvc repro` on a temp copy of the repo: stages run, re-run only what changed, status clean."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def set_param(repo: Path, dotted: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    section, key = dotted.split(".")
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_builds_every_output_and_a_second_repro_runs_nothing(tiny_repo: Path, dvc) -> None:
    first = dvc("repro")
    assert ran_stages(first.stdout) == {
        "ingest", "validate", "window", "train", "evaluate", "register", "backtest", "forecast"
    }  # fmt: skip
    for out in (
        "data/raw/data.parquet",
        "data/validated/data.parquet",
        "data/prepared/series.npy",
        "models/model.pt",
        "metrics/train.json",
        "metrics/evaluate.json",
        "plots/forecast.png",
        "plots/loss.png",
        "plots/error_by_step.png",
        "reports/validation.json",
        "reports/data_docs/index.html",
        "reports/registered.json",
        "forecasts/forecast.parquet",
        "plots/future.png",
        "plots/future.json",
        "metrics/backtest.json",
        "metrics/backtest.parquet",
        "plots/backtest.png",
    ):
        assert (tiny_repo / out).is_file(), out
    fc = pd.read_parquet(tiny_repo / "forecasts/forecast.parquet")
    last = pd.read_parquet(tiny_repo / "data/validated/data.parquet")["time"].iloc[-1]
    assert list(fc.columns) == ["timestamp", "forecast", "lo_80", "hi_80"]
    assert len(fc) == 12 and fc["timestamp"].iloc[0] == last + pd.Timedelta("1h")
    assert (fc["lo_80"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["hi_80"]).all()
    assert "up to date" in dvc("status").stdout
    second = dvc("repro")
    assert ran_stages(second.stdout) == set(), second.stdout
    assert "up to date" in dvc("status").stdout


def test_changing_train_epochs_reruns_train_and_evaluate_but_not_window(tiny_repo: Path, dvc) -> None:
    dvc("repro", "evaluate")
    set_param(tiny_repo, "train.epochs", 2)
    out = dvc("repro", "evaluate").stdout
    assert ran_stages(out) == {"train", "evaluate"}, out


def test_changing_an_unrelated_register_key_reruns_nothing_before_register(tiny_repo: Path, dvc) -> None:
    dvc("repro", "evaluate")
    set_param(tiny_repo, "register.model_name", "another-name")
    assert ran_stages(dvc("repro", "evaluate").stdout) == set()


def test_exp_run_with_a_new_horizon_rewindows_and_retrains(tiny_repo: Path, dvc) -> None:
    dvc("repro", "window")
    out = dvc("exp", "run", "-S", "window.horizon=6", "evaluate").stdout
    assert {"validate", "window", "train", "evaluate"} <= ran_stages(out), out
    meta = json.loads((tiny_repo / "data/prepared/meta.json").read_text())
    assert meta["horizon"] == 6
    shown = dvc("exp", "show", "--json").stdout
    assert "window.horizon" in shown or '"horizon": 6' in shown


def test_metrics_carry_every_contract_key(tiny_repo: Path, dvc) -> None:
    dvc("repro", "evaluate")
    ev = json.loads((tiny_repo / "metrics/evaluate.json").read_text())
    keys = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows"}
    assert keys <= set(ev)
    for name in ("repeat_last", "seasonal_naive"):
        assert keys <= set(ev["baselines"][name])
        assert set(ev["baselines"][name]["intervals"]["80"]) == {"coverage", "width_scaled"}
        assert ev["baselines"][name]["pinball_scaled"] > 0
    assert 0 < ev["intervals"]["80"]["coverage"] <= 1 and ev["intervals"]["80"]["width_scaled"] > 0
    assert ev["pinball_scaled"] > 0
    tr = json.loads((tiny_repo / "metrics/train.json").read_text())
    assert {"epochs", "best_val_loss", "train_seconds", "samples_per_second", "device", "n_params"} <= set(tr)
    assert tr["device"] == "cpu"
    shown = dvc("metrics", "show").stdout
    assert "mse_scaled" in shown


def test_a_duplicated_timestamp_fails_repro_with_one_line_naming_it(tiny_repo: Path, dvc) -> None:
    csv = tiny_repo / "data/external/hourly.csv"
    lines = csv.read_text().splitlines()
    lines.insert(11, lines[10])  # row 10 twice
    csv.write_text("\n".join(lines) + "\n")
    proc = dvc("repro", "validate", check=False)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    stamp = lines[10].split(",")[0]
    assert any(stamp in ln and "unique" in ln for ln in errors), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tiny_repo / "data/validated/data.parquet").exists()


def test_dvc_push_to_the_configured_local_remote_works(tiny_repo: Path, dvc) -> None:
    dvc("repro", "window")
    dvc("push", "window")
    assert (tiny_repo / ".dvc-storage" / "files").is_dir()
