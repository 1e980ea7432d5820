"""`dvc repro` on a temp copy of the repo: stages run, re-run only what changed, status clean.

One repo is built per session (``built_repo``); tests that change it work on ``repo_copy``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import BuiltRepo, dvc_at
from tsforecast import stages

pytestmark = pytest.mark.slow


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def set_param(repo: Path, dotted: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    section, key = dotted.split(".")
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_repro_builds_every_output_and_a_second_repro_runs_nothing(built_repo: BuiltRepo) -> None:
    root = built_repo.root
    assert ran_stages(built_repo.repro_stdout) == set(stages.NAMES)
    for out in (
        "data/raw/data.parquet",
        "data/validated/data.parquet",
        "data/prepared/values.npy",
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
        assert (root / out).is_file(), out
    fc = pd.read_parquet(root / "forecasts/forecast.parquet")
    last = pd.read_parquet(root / "data/validated/data.parquet")["time"].iloc[-1]
    assert list(fc.columns) == ["timestamp", "forecast", "lo_80", "hi_80"]
    assert len(fc) == 12 and fc["timestamp"].iloc[0] == last + pd.Timedelta("1h")
    assert (fc["lo_80"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["hi_80"]).all()
    assert "up to date" in dvc_at(root, "status").stdout
    second = dvc_at(root, "repro")
    assert ran_stages(second.stdout) == set(), second.stdout
    assert "up to date" in dvc_at(root, "status").stdout


def test_an_edit_of_a_shared_module_leaves_every_stage_out_of_date(repo_copy: Path, dvc) -> None:
    config = repo_copy / "src/tsforecast/config.py"
    config.write_text(config.read_text() + "\n# an edit\n")
    status = json.loads(dvc("status", "--json").stdout or "{}")
    assert list(status) == list(stages.NAMES)
    for stage, changes in status.items():
        assert {"changed deps": {"src/tsforecast": "modified"}} in changes, (stage, changes)


def test_byte_code_caches_in_the_package_are_no_code_change(repo_copy: Path, dvc) -> None:
    cache = repo_copy / "src/tsforecast/__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "config.cpython-312.pyc").write_bytes(b"\0" * 16)
    assert json.loads(dvc("status", "--json").stdout or "{}") == {}


def test_changing_train_epochs_reruns_train_and_evaluate_but_not_window(repo_copy: Path, dvc) -> None:
    set_param(repo_copy, "train.epochs", 2)
    out = dvc("repro", "evaluate").stdout
    assert ran_stages(out) == {"train", "evaluate"}, out


def test_changing_an_unrelated_register_key_reruns_nothing_before_register(repo_copy: Path, dvc) -> None:
    set_param(repo_copy, "register.model_name", "another-name")
    assert ran_stages(dvc("repro", "evaluate").stdout) == set()


def test_exp_run_with_a_new_horizon_rewindows_and_retrains(repo_copy: Path, dvc) -> None:
    out = dvc("exp", "run", "-S", "window.horizon=6", "evaluate").stdout
    assert {"validate", "window", "train", "evaluate"} <= ran_stages(out), out
    meta = json.loads((repo_copy / "data/prepared/meta.json").read_text())
    assert meta["horizon"] == 6
    shown = dvc("exp", "show", "--json").stdout
    assert "window.horizon" in shown or '"horizon": 6' in shown


def test_metrics_carry_every_contract_key(built_repo: BuiltRepo) -> None:
    root = built_repo.root
    ev = json.loads((root / "metrics/evaluate.json").read_text())
    keys = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows"}
    assert keys <= set(ev)
    for name in ("repeat_last", "seasonal_naive"):
        assert keys <= set(ev["baselines"][name])
        assert set(ev["baselines"][name]["intervals"]["80"]) == {"coverage", "width_scaled"}
        assert ev["baselines"][name]["pinball_scaled"] > 0
    assert 0 < ev["intervals"]["80"]["coverage"] <= 1 and ev["intervals"]["80"]["width_scaled"] > 0
    assert ev["pinball_scaled"] > 0
    tr = json.loads((root / "metrics/train.json").read_text())
    assert {"epochs", "best_val_loss", "train_seconds", "samples_per_second", "device", "n_params"} <= set(tr)
    assert tr["device"] == "cpu"
    shown = dvc_at(root, "metrics", "show").stdout
    assert "mse_scaled" in shown


def test_a_duplicated_timestamp_fails_repro_with_one_line_naming_it(repo_copy: Path, dvc) -> None:
    csv = repo_copy / "data/external/hourly.csv"
    before = (repo_copy / "data/validated/data.parquet").read_bytes()
    lines = csv.read_text().splitlines()
    lines.insert(11, lines[10])  # row 10 twice
    csv.write_text("\n".join(lines) + "\n")
    proc = dvc("repro", "validate", check=False)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    stamp = lines[10].split(",")[0]
    assert any(stamp in ln and "unique" in ln for ln in errors), proc.stderr
    assert "Traceback" not in proc.stderr
    assert (repo_copy / "data/validated/data.parquet").read_bytes() == before, "validated data changed"


def test_dvc_push_to_the_configured_local_remote_works(repo_copy: Path, dvc) -> None:
    dvc("push", "window")
    assert (repo_copy / ".dvc-storage" / "files").is_dir()
