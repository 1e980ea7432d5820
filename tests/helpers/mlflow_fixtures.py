"""Fixtures for the register/predict tests: a tiny real pipeline repo and a real MLflow server.

Import the fixtures a test module needs explicitly (each ``fixture_<name>`` provides the
fixture ``<name>``, so test arguments do not shadow the imported names)::

    from tests.helpers.mlflow_fixtures import fixture_mlflow_server, fixture_tiny_repo  # noqa: F401

Session-wide things (the built template repo, the server) are kept in pytest's config
stash, so modules that import the same fixture share one of each, and the server is
stopped (its whole process group) when the session ends, also after a failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.processes import free_port, start_in_own_session, stop_process_group, tail
from tsforecast import stages
from tsforecast.config import Config, load_config
from tsforecast.paths import Paths

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]

# Small enough to train in a second or two on a CPU, big enough to beat repeat_last.
TINY_PARAMS: dict[str, Any] = {
    "data": {"path": "data/external/series.csv", "target": "y", "timestamp_column": "timestamp"},
    "split": {"train": 0.7, "val": 0.1, "test": 0.2, "lookback": True},
    "window": {"input_size": 24, "horizon": 6},
    "model": {"hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "patience": 3, "device": "cpu", "resume": False},
    "evaluate": {"seasonal_period": 24, "plot_windows": 2},
    "register": {"model_name": "tiny-lstm", "max_retries": 2, "retry_backoff_s": 0.1},
}


def sine_frame(n: int = 600, seed: int = 0, amplitude: float = 10.0, level: float = 50.0) -> pd.DataFrame:
    """Hourly sine (period 24) plus noise: a series the LSTM learns in a few epochs."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = level + amplitude * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, n)
    ts = pd.date_range("2024-01-01", periods=n, freq="h")
    return pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "y": y.round(4)})


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for k, v in over.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


@dataclass(frozen=True)
class Repo:
    """A pipeline checkout in a temp folder (no git, no DVC): params.yaml + stage outputs."""

    root: Path

    @property
    def paths(self) -> Paths:
        return Paths.from_root(self.root)

    @property
    def cfg(self) -> Config:
        return load_config(self.root / "params.yaml")

    def set_params(self, **sections: dict[str, Any]) -> None:
        raw = yaml.safe_load((self.root / "params.yaml").read_text())
        (self.root / "params.yaml").write_text(yaml.safe_dump(_merge(raw, sections), sort_keys=False))

    def run(self, *stages: str) -> None:
        """Run stages in-process, as `dvc repro` would through the CLI."""
        run_stages(self.root, stages)


STAGES = stages.NAMES[: stages.NAMES.index("evaluate") + 1]  # register: the tests call it


def run_stages(root: Path, names: Sequence[str] = STAGES) -> None:
    import torch

    cfg, paths = load_config(root / "params.yaml"), Paths.from_root(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny LSTM: more threads only contend with the other tests' processes
    try:
        for name in names:
            stages.run_stage(name, cfg, paths)
    finally:
        torch.set_num_threads(threads)


def build_repo(root: Path, frame: pd.DataFrame | None = None, **params: dict[str, Any]) -> Repo:
    """Write the series and tiny params into ``root`` and run ingest..evaluate."""
    (root / "data" / "external").mkdir(parents=True, exist_ok=True)
    (frame if frame is not None else sine_frame()).to_csv(
        root / "data" / "external" / "series.csv", index=False
    )
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(TINY_PARAMS, params), sort_keys=False))
    run_stages(root)
    return Repo(root)


def register(repo: Repo) -> Any:
    """The register stage as the CLI calls it: the sections its signature names, from the repo's params."""
    from tsforecast.stages import run_stage

    return run_stage("register", repo.cfg, repo.paths)


def client_for(repo: Repo) -> Any:
    """An MLflow client on the repo's own store."""
    from mlflow import MlflowClient

    from tsforecast.registry.tracking import tracking_uri

    uri = tracking_uri(repo.paths)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def perturb_model(repo: Repo, noise: float, seed: int = 1) -> float:
    """Add Gaussian noise to every weight of models/model.pt, re-evaluate; returns the new mse_scaled."""
    import torch

    from tsforecast.training.model import load_model, save_model

    path = repo.paths.models / "model.pt"
    model, extra = load_model(path)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * noise)
    save_model(model, path, extra)
    stages.run_stage("evaluate", repo.cfg, repo.paths)
    return float(json.loads((repo.paths.metrics / "evaluate.json").read_text())["mse_scaled"])


_TEMPLATE = pytest.StashKey[Path]()
_SERVER = pytest.StashKey["MlflowServer"]()


@pytest.fixture(scope="session", name="tiny_repo_template")
def fixture_tiny_repo_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny pipeline, built once per session (ingest..evaluate on a 600-row sine)."""
    stash = request.config.stash
    if _TEMPLATE not in stash:
        root = build_repo(tmp_path_factory.mktemp("tiny-template")).root
        init_store(root / "mlflow.db")  # copies start from a migrated store: ~5 s less per test
        stash[_TEMPLATE] = root
    return stash[_TEMPLATE]


def init_store(db: Path) -> str:
    """Create and migrate an empty sqlite MLflow store at ``db``; returns its URI."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    return uri


@pytest.fixture(name="tiny_repo")
def fixture_tiny_repo(tiny_repo_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A private copy of the tiny repo, its own sqlite store, cwd inside it; no MLFLOW_* env."""
    root = tmp_path / "repo"
    shutil.copytree(tiny_repo_template, root)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(root)
    return Repo(root)


# ---------------------------------------------------------------------------- processes


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without MLFLOW_* settings, the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env.update(DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float, what: str) -> None:
    """Poll ``url`` until it answers 200; fail with the log tail if ``proc`` dies or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout:g} s:\n{tail(log)}")
        time.sleep(0.3)


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1: sqlite backend and proxied artifacts in a temp folder."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen

    def env(self, **extra: str) -> dict[str, str]:
        """An environment whose MLflow client talks to this server."""
        return clean_env(MLFLOW_TRACKING_URI=self.url, **extra)

    def stop(self) -> None:
        stop_process_group(self.process)


def start_mlflow_server(home: Path, timeout: float = 120) -> MlflowServer:
    """Start the server and wait for /health; stops it again if it never gets healthy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # the server only accepts localhost Host headers by default
    log = home / "server.log"
    args = [
        str(BIN / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(home / "artifacts"),
    ]  # fmt: skip
    # the job runner starts ~15 extra processes (~3 GiB) by default; nothing here needs it
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = start_in_own_session(args, env=env, cwd=home, log=log)
    server = MlflowServer(url=url, home=home, log=log, process=proc)
    try:
        wait_http(f"{url}/health", proc, log, timeout, "mlflow server")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session", name="mlflow_server")
def fixture_mlflow_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """One real ``mlflow server`` for the whole session (shared by every module that imports this)."""
    stash = request.config.stash
    if _SERVER not in stash:
        server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
        stash[_SERVER] = server
        request.config.add_cleanup(server.stop)
    server = stash[_SERVER]
    if server.process.poll() is not None:
        raise RuntimeError(f"mlflow server exited {server.process.returncode}:\n{tail(server.log)}")
    yield server


def run_cli(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``tsforecast <args>`` in a subprocess."""
    return subprocess.run(
        [str(BIN / "tsforecast"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass(frozen=True)
class ServerRegistration:
    """The tiny repo registered through ``tsforecast register`` on the shared server."""

    server: MlflowServer
    repo: Repo
    result: dict[str, Any]  # reports/registered.json


_REGISTRATION = pytest.StashKey[ServerRegistration]()
E2E_MODEL = "e2e-lstm"


@pytest.fixture(scope="session", name="server_registration")
def fixture_server_registration(
    request: pytest.FixtureRequest,
    mlflow_server: MlflowServer,
    tiny_repo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerRegistration:
    """Run ``tsforecast register`` (the CLI, as `dvc repro` does) against the server, once."""
    stash = request.config.stash
    if _REGISTRATION not in stash:
        root = tmp_path_factory.mktemp("e2e") / "repo"
        shutil.copytree(tiny_repo_template, root, ignore=shutil.ignore_patterns("mlflow.db*"))
        repo = Repo(root)
        repo.set_params(register={"model_name": E2E_MODEL})
        proc = run_cli("register", cwd=root, env=mlflow_server.env())
        if proc.returncode != 0:
            raise AssertionError(
                f"tsforecast register exited {proc.returncode}:\n{proc.stderr[-4000:]}\n"
                f"server log:\n{tail(mlflow_server.log)}"
            )
        result = json.loads((root / "reports" / "registered.json").read_text())
        stash[_REGISTRATION] = ServerRegistration(mlflow_server, repo, result)
    return stash[_REGISTRATION]
