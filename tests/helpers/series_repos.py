"""Tiny real pipeline repos of one series or a panel, for tests parametrized over S in {1, 3}.

One series is a panel of one, so a behaviour that exists for both is tested once, over
``n_series`` in :data:`SIZES`: ``1`` is the tiny one-series repo of
:mod:`tests.helpers.mlflow_fixtures` (a 600-row hourly sine, column ``y``); ``3`` is the same setup with
three such series in a long file with the id column :data:`ID` (each its own level, amplitude,
noise and start). Both are built once per session (ingest..evaluate, the real stages) and
copied for each test::

    from tests.helpers.series_repos import fixture_series_repo, fixture_panel_repo_template  # noqa: F401
    from tests.helpers.mlflow_fixtures import fixture_tiny_repo_template  # noqa: F401
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.mlflow_fixtures import (
    MlflowServer,
    Repo,
    ServerRegistration,
    build_repo,
    init_store,
    run_cli,
    sine_frame,
)

SIZES = (1, 3)
SIZE_IDS = ("one_series", "panel_of_3")
ID = "sid"  # the panel's id column
L, H = 24, 6  # the tiny repos' window
PANEL_IDS = ["s0", "s1", "s2"]


def panel_frame(n_series: int = 3, n: int = 600, seed: int = 0, level: float = 50.0) -> pd.DataFrame:
    """``n_series`` hourly sines (period 24) in a long frame ``sid, timestamp, y``; series ``i``
    starts ``3 i`` hours after the first and has its own level (``level + 20 i``), amplitude and noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n_series):
        t = np.arange(n)
        y = level + 20 * i + (10.0 + 3 * i) * np.sin(2 * np.pi * t / 24 + i) + rng.normal(0, 0.5, n)
        ts = pd.date_range("2024-01-01", periods=n, freq="h") + pd.Timedelta(hours=3 * i)
        parts.append(
            pd.DataFrame({ID: f"s{i}", "timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "y": y.round(4)})
        )
    return pd.concat(parts, ignore_index=True)


def series_data(n_series: int, **kw: object) -> tuple[pd.DataFrame, dict[str, dict[str, object]]]:
    """The CSV frame and the params changes of a repo of ``n_series`` series."""
    if n_series == 1:
        return sine_frame(**kw), {}  # type: ignore[arg-type]
    return panel_frame(n_series, **kw), {"data": {"id_column": ID}}  # type: ignore[arg-type]


def write_series(repo: Repo, n_series: int, **kw: object) -> None:
    """New data for ``repo``'s source file: ``n_series`` series (``n``, ``seed``, ``level`` as
    :func:`series_data`); run the stages after it to use them."""
    series_data(n_series, **kw)[0].to_csv(repo.root / "data" / "external" / "series.csv", index=False)


def build_series_repo(root: Path, n_series: int) -> Repo:
    """The tiny pipeline (ingest..evaluate) on ``n_series`` series, with a migrated sqlite store."""
    frame, params = series_data(n_series)
    repo = build_repo(root, frame, **params)
    init_store(root / "mlflow.db")
    return repo


_PANEL_TEMPLATE = pytest.StashKey[Path]()


@pytest.fixture(scope="session", name="panel_repo_template")
def fixture_panel_repo_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny pipeline on a panel of 3, built once per session."""
    stash = request.config.stash
    if _PANEL_TEMPLATE not in stash:
        stash[_PANEL_TEMPLATE] = build_series_repo(tmp_path_factory.mktemp("panel-template"), 3).root
    return stash[_PANEL_TEMPLATE]


def copy_repo(template: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """A private copy of ``template``: its own sqlite store, cwd inside it, no MLFLOW_* env."""
    shutil.copytree(template, root)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(root)
    return Repo(root)


@pytest.fixture(name="series_repo", params=SIZES, ids=SIZE_IDS)
def fixture_series_repo(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Repo:
    """A private copy of the tiny repo of one series, or of a panel of 3 (``repo.n_series`` tells)."""
    name = "tiny_repo_template" if request.param == 1 else "panel_repo_template"
    return copy_repo(request.getfixturevalue(name), tmp_path / "repo", monkeypatch)


def n_series(repo: Repo) -> int:
    """1 for the one-series repo, else the panel's size."""
    return 1 if repo.cfg.data.id_column is None else len(PANEL_IDS)


# ---------------------------------------------------------------------------- on a real MLflow server

E2E_PANEL_MODEL = "e2e-panel-lstm"
_PANEL_REGISTRATION = pytest.StashKey["ServerRegistration"]()


@pytest.fixture(scope="session", name="panel_server_registration")
def fixture_panel_server_registration(
    request: pytest.FixtureRequest,
    mlflow_server: MlflowServer,
    panel_repo_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerRegistration:
    """The panel of 3 registered through ``tsforecast register`` on the shared server, once."""
    stash = request.config.stash
    if _PANEL_REGISTRATION not in stash:
        root = tmp_path_factory.mktemp("e2e-panel") / "repo"
        shutil.copytree(panel_repo_template, root, ignore=shutil.ignore_patterns("mlflow.db*"))
        repo = Repo(root)
        repo.set_params(register={"model_name": E2E_PANEL_MODEL})
        proc = run_cli("register", cwd=root, env=mlflow_server.env())
        if proc.returncode != 0:
            raise AssertionError(f"tsforecast register exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        result = json.loads((root / "reports" / "registered.json").read_text())
        stash[_PANEL_REGISTRATION] = ServerRegistration(mlflow_server, repo, result)
    return stash[_PANEL_REGISTRATION]


__all__ = [
    "E2E_PANEL_MODEL",
    "H",
    "ID",
    "L",
    "PANEL_IDS",
    "SIZES",
    "SIZE_IDS",
    "build_series_repo",
    "copy_repo",
    "fixture_panel_repo_template",
    "fixture_panel_server_registration",
    "fixture_series_repo",
    "n_series",
    "panel_frame",
    "series_data",
    "write_series",
]
