"""Evaluate and backtest of a panel on a real ``dask scheduler`` with two ``dask worker`` processes.

The stage functions send chunks of series (with their rows) and the model's weights to the
workers; the numbers must equal an in-process run's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.eval_fixtures import noisy_model, panel_frame, write_repo
from tests.integration.test_dask import scheduler  # noqa: F401  (the fixture)
from tsforecast import stages
from tsforecast.config import load_config
from tsforecast.paths import Paths

L, H, M = 24, 6, 12


def evaluate_and_backtest(root: Path, address: str | None) -> tuple[dict, dict]:
    frame = panel_frame([150 + 5 * i for i in range(12)], period=M, seed=2)
    paths = write_repo(
        root,
        frame,
        {"train": 40, "val": 12, "test": 12},
        {"input_size": L, "horizon": H},
        model=noisy_model(L, H, seed=1),
        evaluate={"seasonal_period": M, "plot_windows": 2},
        backtest={"n_cutoffs": 3},
        orchestration={"dask_address": address},
    )
    cfg = load_config(paths.params)
    for name in ("evaluate", "backtest"):
        stages.run_stage(name, cfg, Paths.from_root(root))
    read = lambda f: json.loads((paths.metrics / f).read_text())  # noqa: E731
    return read("evaluate.json"), read("backtest.json")


@pytest.mark.slow
def test_evaluate_and_backtest_on_a_real_scheduler_equal_the_in_process_run(
    scheduler: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    on_dask = evaluate_and_backtest(tmp_path / "dask", scheduler)
    local = evaluate_and_backtest(tmp_path / "local", None)
    for got, want in zip(on_dask, local, strict=True):
        for key in ("mse_scaled", "mae_scaled", "smape", "mase", "owa", "n_series"):
            assert got[key] == pytest.approx(want[key], rel=1e-6), key
        for b in ("naive2", "seasonal_naive", "repeat_last"):
            assert got["baselines"][b]["owa"] == pytest.approx(want["baselines"][b]["owa"], rel=1e-9)
    assert on_dask[1]["n_cutoffs"] == 3
