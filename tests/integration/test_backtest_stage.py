"""The backtest stage through DVC on a tiny repo: outputs, the contract, what re-runs it, its errors.

One repo for the module (training it is the slow part): the tests read it first, then change it.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import BIN, make_repo, run
from tsforecast.dataset.panel import load_panel
from tsforecast.evaluation.backtest import run_backtest
from tsforecast.stages import EXECUTION_SECTIONS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny repo after `dvc repro backtest`; first-repro.log beside it holds its output."""
    path = make_repo(tmp_path_factory.mktemp("backtest") / "repo")
    out = run([str(BIN / "dvc"), "repro", "backtest"], path).stdout
    (path.parent / "first-repro.log").write_text(out)
    return path


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], repo, check=check)


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


def set_param(repo: Path, dotted: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    section, key = dotted.split(".")
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_dvc_yaml_lists_exactly_the_sections_run_backtest_reads() -> None:
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["backtest"]
    sections = {str(p).split(".")[0] for p in stage["params"]}
    # the result sections: execution settings (orchestration) are in no stage's params
    assert sections == set(inspect.signature(run_backtest).parameters) - {"paths", *EXECUTION_SECTIONS}
    assert "src/tsforecast" in stage["deps"]
    assert {"cache": False, "persist": True} == stage["metrics"][0]["metrics/backtest.json"]


def test_repro_backtest_writes_the_contract_over_the_test_period(repo: Path) -> None:
    out = (repo.parent / "first-repro.log").read_text()

    assert "backtest" in ran_stages(out) and "evaluate" not in ran_stages(out)
    m = json.loads((repo / "metrics/backtest.json").read_text())
    assert m["n_cutoffs"] == 5 and len(m["by_cutoff"]) == 5 and m["refit"] is False
    assert METRIC_KEYS <= set(m)
    for name in ("repeat_last", "seasonal_naive"):
        assert METRIC_KEYS <= set(m["baselines"][name])
    panel = load_panel(repo / "data/prepared")  # one series: a panel of one
    stamps = panel.timestamps(0)
    test_start, test_end = panel.part_bounds("test")[0]
    cutoffs = [pd.Timestamp(c["cutoff"]) for c in m["by_cutoff"]]
    assert cutoffs == sorted(cutoffs)
    assert cutoffs[0] == stamps[test_start - 1]  # the first forecast covers the first test rows
    assert cutoffs[-1] == stamps[test_end - 1 - panel.horizon]  # the last ends on the last row
    rows = pd.read_parquet(repo / "metrics/backtest.parquet")
    assert len(rows) == 5 * panel.horizon and "series" not in rows.columns
    assert (repo / "plots/backtest.png").is_file()
    assert "up to date" in dvc(repo, "status", "backtest").stdout


def test_too_many_cutoffs_fail_with_one_line_naming_the_value_and_keep_the_outputs(repo: Path) -> None:
    before = (repo / "metrics/backtest.json").read_text()
    set_param(repo, "backtest.n_cutoffs", 100_000)

    proc = run([str(BIN / "tsforecast"), "backtest"], repo, check=False)

    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "backtest.n_cutoffs=100000" in errors[0], proc.stderr
    assert "use 1 <= n_cutoffs <= 133" in errors[0]  # 144 test rows, horizon 12
    assert "Traceback" not in proc.stderr
    assert (repo / "metrics/backtest.json").read_text() == before


def test_changing_n_cutoffs_reruns_only_backtest(repo: Path) -> None:
    set_param(repo, "backtest.n_cutoffs", 3)

    out = dvc(repo, "repro", "backtest").stdout

    assert ran_stages(out) == {"backtest"}, out
    assert json.loads((repo / "metrics/backtest.json").read_text())["n_cutoffs"] == 3
