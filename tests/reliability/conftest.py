"""A small, real pipeline checkout that every reliability test copies.

``good_repo`` (once per session) is a git + DVC checkout of this repo's dvc.yaml and
params.yaml, with tiny params and a 600-row hourly series in ``data/external/good.csv``;
``dvc repro evaluate`` has run in it, so every output up to evaluate exists. ``repo``
gives each test its own copy of it. Stages run as the user runs them: the ``tsforecast``
console script or ``dvc repro``, in subprocesses.

``checkout`` is the same checkout without git or DVC, its stages run in this process by
``tsforecast.cli.main`` (``in_process``): for the tests of what a stage says, not of the
path from DVC to the user.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
import yaml

from tsforecast import stages

MAIN = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv that runs pytest holds tsforecast and dvc
SOURCE = "data/external/good.csv"
# what the issue promises to keep when a stage fails
GUARDED = ("data/validated", "data/prepared", "models", "metrics")
STAGE_ORDER = stages.NAMES[: stages.NAMES.index("evaluate") + 1]  # register: the MLflow tests

# Tiny but real: L=24, H=6, one day of seasonality, two quick epochs.
SMALL_PARAMS: dict[str, Any] = {
    "data.path": SOURCE,
    "data.target": "y",
    "data.covariates": ["temp"],
    "split.train": 0.6,
    "split.val": 0.2,
    "split.test": 0.2,
    "window.input_size": 24,
    "window.horizon": 6,
    "model.hidden_size": 8,
    "model.num_layers": 1,
    "train.epochs": 2,
    "train.batch_size": 32,
    "train.device": "cpu",
    "evaluate.seasonal_period": 24,
    "evaluate.plot_windows": 1,
}


def stage_env() -> dict[str, str]:
    """The environment stages run in: the venv first on PATH, one math thread, no debug."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSFORECAST_", "MLFLOW_"))}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    # Two shared cores: torch's two intra-op threads spin against each other and other jobs
    # (an epoch measured 10 s instead of 0.1 s); one thread is fast and deterministic.
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", GX_ANALYTICS_ENABLED="false")
    env.update(DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    return env


def series_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """An hourly series: a daily sine plus noise (target ``y``) and a covariate ``temp``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S"),
            "y": (10 + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, n)).round(3),
            "temp": (20 + np.cos(2 * np.pi * t / 168)).round(3),
        }
    )


def set_params(params_file: Path, overrides: dict[str, Any]) -> None:
    """Set dotted keys (``{"window.horizon": 6}``) in a params.yaml, creating new ones."""
    params = yaml.safe_load(params_file.read_text()) or {}
    for dotted, value in overrides.items():
        node = params
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def tree_digest(root: Path, rels: Iterable[str]) -> dict[str, str]:
    """sha256 of every file under each of ``rels`` (a missing path maps to ``<absent>``)."""
    out: dict[str, str] = {}
    for rel in rels:
        top = root / rel
        if not top.exists():
            out[rel] = "<absent>"
            continue
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for f in files:
            out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@dataclass
class Run:
    """One finished command: its exit code and output."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)} -> {self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}"


@dataclass
class Repo:
    """A pipeline checkout in a temp dir, with helpers to change it and run its stages."""

    root: Path

    def run(self, *args: str, timeout: float = 300) -> Run:
        proc = subprocess.run(
            list(args), cwd=self.root, env=stage_env(), capture_output=True, text=True, timeout=timeout
        )
        return Run(list(args), proc.returncode, proc.stdout, proc.stderr)

    def tsforecast(self, *args: str) -> Run:
        return self.run(str(BIN / "tsforecast"), *args)

    def dvc(self, *args: str, timeout: float = 300) -> Run:
        return self.run(str(BIN / "dvc"), *args, timeout=timeout)

    def dvc_status(self) -> dict[str, Any]:
        """``dvc status`` of the stages up to evaluate (register belongs to the MLflow tests)."""
        run = self.dvc("status", "--json", "--with-deps", "evaluate")
        assert run.returncode == 0, run
        return json.loads(run.stdout or "{}")

    def set_params(self, **dotted: Any) -> None:
        """``repo.set_params(**{"window.horizon": 6})``."""
        set_params(self.root / "params.yaml", dotted)

    def write(self, rel: str, content: str | bytes | pd.DataFrame) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def digest(self, rels: Iterable[str] = GUARDED) -> dict[str, str]:
        return tree_digest(self.root, rels)


def _build_good_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for rel in ("dvc.yaml", "params.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(MAIN / rel, root / rel)
    # dvc.yaml lists the stage modules as deps: the checkout holds copies of them
    shutil.copytree(
        MAIN / "src" / "tsforecast", root / "src" / "tsforecast", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(MAIN / "data" / "external", root / "data" / "external")
    series_frame().to_csv(root / SOURCE, index=False)
    set_params(root / "params.yaml", SMALL_PARAMS)
    (root / ".gitignore").write_text(".checkpoints/\n.dvc-storage/\n.*.tmp-*\n.*.old-*\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-q", "-m", "good checkout"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    repro = Repo(root).dvc("repro", "evaluate")
    assert repro.returncode == 0, repro
    return root


@pytest.fixture(scope="session")
def good_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout in which ``dvc repro evaluate`` has run: the 'previous outputs' of every test."""
    return _build_good_repo(tmp_path_factory.mktemp("reliability") / "good")


def in_process(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``tsforecast <args> --root <root>`` called in this process: ``cli.main``'s exit code, its output."""
    from tsforecast.cli import main

    capsys.readouterr()  # drop what came before
    code = main([*args, "--root", str(root)])
    out, err = capsys.readouterr()
    return Run(["tsforecast", *args, "(in-process)"], code, out, err)


@pytest.fixture(scope="session")
def checkout_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml, the good series and every output up to evaluate, made in this process."""
    import torch

    from tsforecast.cli import main

    root = tmp_path_factory.mktemp("in-process") / "good"
    (root / SOURCE).parent.mkdir(parents=True)
    shutil.copy2(MAIN / "params.yaml", root / "params.yaml")
    series_frame().to_csv(root / SOURCE, index=False)
    set_params(root / "params.yaml", SMALL_PARAMS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as stage_env: one math thread is fast on shared cores
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in [k for k in os.environ if k.startswith(("TSFORECAST_", "MLFLOW_"))]:
                mp.delenv(name)
            mp.chdir(root)
            for stage in STAGE_ORDER:
                assert main([stage, "--root", str(root)]) == 0, f"{stage} failed on the good checkout"
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture
def checkout(checkout_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """This test's own copy of ``checkout_template``, as the working directory, no TSFORECAST_ env."""
    dest = tmp_path / "checkout"
    shutil.copytree(checkout_template, dest, symlinks=False)
    for name in [k for k in os.environ if k.startswith(("TSFORECAST_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(dest)
    return Repo(dest)


@pytest.fixture
def repo(good_repo: Path, tmp_path: Path) -> Repo:
    """This test's own copy of ``good_repo`` (real files, no links into it)."""
    dest = tmp_path / "repo"
    shutil.copytree(good_repo, dest, symlinks=False, ignore=shutil.ignore_patterns("tmp"))
    return Repo(dest)


def survivors(root: Path, grace: float = 10) -> list[str]:
    """Processes still alive (zombies aside) ``grace`` s after a kill, with a working dir in ``root``.

    A SIGKILL is delivered asynchronously: a grandchild may still be exiting when its killed
    parent has been reaped, so this waits for them to go before naming any.
    """
    deadline = time.monotonic() + grace
    while True:
        found = []
        for p in psutil.process_iter():
            try:
                if p.status() != psutil.STATUS_ZOMBIE and Path(p.cwd()).is_relative_to(root):
                    found.append(f"{p.pid} {' '.join(p.cmdline())}")
            except (psutil.Error, OSError):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def assert_user_error(run: Run, *expected: str, lines: int | None = 1) -> str:
    """A user error: a non-zero exit, ``lines`` ``error:`` lines (None: any number), one of
    them holding every ``expected`` substring, and no traceback anywhere. Returns that line."""
    assert run.returncode != 0, run
    assert "Traceback" not in run.stderr + run.stdout, run
    errors = run.error_lines
    if lines is not None:
        assert len(errors) == lines, run
    matching = [line for line in errors if all(s in line for s in expected)]
    assert matching, f"no error line holds all of {expected}:\n{run}"
    return matching[0]
