"""The panel pipeline as users run it at scale: ``python -m pipelines.flows`` against a real Dask
cluster (a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1).

The repo is a copy of this one with a small long-format panel (a CSV with a series id column)
and ``orchestration.dask_address`` pointing at the scheduler. The flow runs every stage with
``dvc repro --single-item``; the per-series work of validate, evaluate, backtest and forecast
goes to the workers; afterwards ``dvc status`` is clean and a second run re-runs nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.dask_cluster import dask_cluster, executed_counts
from tests.integration.conftest import BIN, dvc_at, make_repo

pytestmark = pytest.mark.slow

N_SERIES, HORIZON = 9, 12


def panel_frame(n_series: int = N_SERIES, seed: int = 3) -> pd.DataFrame:
    """Hourly series of different lengths, levels and phases, long format (series, time, load)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        n = 300 + 20 * i
        t = np.arange(n)
        level = 50 + 40 * i
        load = level * (1 + 0.2 * np.sin(2 * np.pi * (t + 3 * i) / 24)) + rng.normal(0, 1, n)
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=5 * i)
        parts.append(
            pd.DataFrame(
                {
                    "series": f"meter-{i:02d}",
                    "time": pd.date_range(start, periods=n, freq="h"),
                    "load": load.round(3),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def panel_params(address: str) -> dict:
    return {
        "data": {
            "path": "data/external/panel.csv",
            "id_column": "series",
            "timestamp_column": "time",
            "target": "load",
            "covariates": [],
        },
        "split": {"train": 120, "val": 24, "test": 24, "lookback": True},
        "window": {"input_size": 48, "horizon": HORIZON, "stride": 1},
        "train": {"epochs": 2, "batch_size": 64, "patience": 2, "windows_per_epoch": 512},
        "evaluate": {"seasonal_period": 24, "plot_windows": 2},
        "backtest": {"n_cutoffs": 2},
        "orchestration": {"dask_address": address},
    }


def run_flow(root: Path, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "TQDM_DISABLE": "1",
    }
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(key, None)  # the repo's own sqlite store; Prefect's temporary local API
    return subprocess.run(
        [sys.executable, "-m", "pipelines.flows"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_python_m_pipelines_flows_runs_the_panel_on_a_dask_cluster(tmp_path: Path) -> None:
    with dask_cluster(tmp_path) as address:
        root = make_repo(tmp_path / "repo", panel_params(address))
        frame = panel_frame()
        frame.to_csv(root / "data/external/panel.csv", index=False)
        before = sum(executed_counts(address).values())

        first = run_flow(root, tmp_path / "prefect")
        assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
        assert "pipeline done" in first.stdout

        ran_on_workers = sum(executed_counts(address).values()) - before
        assert ran_on_workers > 0, "no per-series task reached the Dask workers"

        status = dvc_at(root, "status")
        assert "Data and pipelines are up to date" in status.stdout, status.stdout

        ids = sorted(frame["series"].unique())
        forecast = pd.read_parquet(root / "forecasts/forecast.parquet")
        assert list(forecast.columns) == ["series", "timestamp", "forecast", "lo_80", "hi_80"]
        assert len(forecast) == N_SERIES * HORIZON
        assert sorted(forecast["series"].unique()) == ids
        last = pd.to_datetime(frame.groupby("series")["time"].max())
        first_step = forecast.groupby("series", observed=True)["timestamp"].min()
        expected = {str(k): v + pd.Timedelta(hours=1) for k, v in last.items()}
        assert {str(k): pd.Timestamp(v) for k, v in first_step.items()} == expected
        assert (forecast["lo_80"] <= forecast["forecast"]).all() and (
            forecast["forecast"] <= forecast["hi_80"]
        ).all()

        by_series = pd.read_parquet(root / "metrics/by_series.parquet")
        assert sorted(by_series["series"].astype(str)) == ids

        again = run_flow(root, tmp_path / "prefect")
        assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
        assert "all up to date" in again.stdout, again.stdout
