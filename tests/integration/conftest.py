"""A temp copy of this repo (its git-tracked files) with a small series and tiny params.

``built_repo`` builds it and runs ``dvc repro`` once per test session; tests read it and
never change it. A test that changes files takes ``repo_copy``, its own copy of the built
repo (git, DVC cache and outputs included), and ``dvc`` runs there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"

TINY_PARAMS = {
    "data": {
        "path": "data/external/hourly.csv",
        "timestamp_column": "time",
        "target": "load",
        "covariates": ["temp"],
        "freq": "auto",
        "fill_gaps": 2,
    },
    "split": {"train": 0.6, "val": 0.2, "test": 0.2, "lookback": True},
    "window": {"input_size": 48, "horizon": 12, "stride": 1},
    "model": {"hidden_size": 16, "num_layers": 1, "dropout": 0.0},
    "train": {"epochs": 3, "batch_size": 64, "patience": 3},
    "evaluate": {"seasonal_period": 24, "plot_windows": 2},
}


def hourly_series(n: int = 720, seed: int = 0) -> pd.DataFrame:
    """A daily-seasonal load with a temperature covariate and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    temp = 15 + 5 * np.sin(2 * np.pi * t / 24 - 1) + rng.normal(0, 0.5, n)
    load = 100 + 20 * np.sin(2 * np.pi * t / 24) + 0.8 * temp + rng.normal(0, 1.0, n)
    return pd.DataFrame(
        {
            "time": pd.date_range("2024-01-01", periods=n, freq="h"),
            "load": load.round(3),
            "temp": temp.round(3),
        }
    )


def deep_update(base: dict, new: dict) -> dict:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TQDM_DISABLE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_repo(dest: Path, params: dict | None = None) -> Path:
    """Copy the tracked files of this repo to ``dest``, add the series, commit."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if not src.is_file() or name.startswith(("tests/", "benchmarks/")) or name == "dvc.lock":
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    hourly_series().to_csv(dest / "data/external/hourly.csv", index=False)
    merged = deep_update(yaml.safe_load((REPO / "params.yaml").read_text()), TINY_PARAMS | (params or {}))
    (dest / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
    ):
        run(cmd, dest)
    return dest


@dataclass(frozen=True)
class BuiltRepo:
    """The tiny-params repo after one ``dvc repro``; read it, never change it."""

    root: Path
    repro_stdout: str  # what that first `dvc repro` printed


def dvc_at(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], root, check=check)


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory: pytest.TempPathFactory) -> BuiltRepo:
    root = make_repo(tmp_path_factory.mktemp("built") / "repo")
    return BuiltRepo(root, dvc_at(root, "repro").stdout)


@pytest.fixture
def repo_copy(built_repo: BuiltRepo, tmp_path: Path) -> Path:
    """A copy of the built repo that the test may change."""
    dest = tmp_path / "repo"
    shutil.copytree(built_repo.root, dest, symlinks=True)
    return dest


@pytest.fixture
def dvc(repo_copy: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``dvc <args>`` in ``repo_copy``."""

    def _dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return dvc_at(repo_copy, *args, check=check)

    return _dvc
