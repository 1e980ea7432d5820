"""A teammate's clone of a pushed run is up to date (issue 19, item 12).

After a run, commit what git tracks (dvc.lock, metrics, plot data, reports/*.json), ``dvc push``
to a shared remote (here a local folder), then ``git clone`` + ``dvc pull`` elsewhere:
``dvc status`` must be clean, and the clone has the data, models, forecasts and metrics, but
not the MLflow registry (a local ``mlflow.db`` stays on the machine that ran the pipeline).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import dvc_at, run

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def test_a_clone_of_a_pushed_run_is_clean_in_dvc_status_after_dvc_pull(
    repo_copy: Path, dvc, tmp_path: Path
) -> None:
    remote = tmp_path / "shared-remote"
    dvc("remote", "add", "--default", "shared", str(remote))
    run([*GIT, "add", "-A"], repo_copy)
    run([*GIT, "commit", "-qm", "a pipeline run"], repo_copy)
    assert run(["git", "status", "--porcelain"], repo_copy).stdout == ""
    dvc("push")

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo_copy), str(clone)], tmp_path)
    dvc_at(clone, "pull")

    assert json.loads(dvc_at(clone, "status", "--json").stdout or "{}") == {}
    for out in (
        "data/validated/data.parquet",
        "models/model.pt",
        "forecasts/forecast.parquet",
        "metrics/evaluate.json",
        "reports/registered.json",
    ):
        assert (clone / out).read_bytes() == (repo_copy / out).read_bytes(), out
    assert not (clone / "mlflow.db").exists()  # the registry is not shared: MLFLOW_TRACKING_URI is
    assert run(["git", "status", "--porcelain"], clone).stdout == ""
