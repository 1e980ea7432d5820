"""Experiments that DVC runs in a temporary copy record into the user's MLflow store (issue 19, item 11).

``dvc exp run --queue`` + ``dvc queue start`` and ``dvc exp run --temp`` run the pipeline under
``.dvc/tmp/exps/<tmp dir>/``, which DVC deletes afterwards; the register stage must still write
the run and the model version to ``<repo>/mlflow.db`` (artifacts to ``<repo>/mlartifacts``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

QUEUE_TIMEOUT_S = 900


def wait_for_queue(dvc: Callable[..., object], name: str) -> str:
    """Poll ``dvc queue status`` until ``name`` is done and every queue worker has exited."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = dvc("queue", "status").stdout
        line = next((ln for ln in status.splitlines() if f" {name} " in f" {ln} "), "")
        done = any(word in line for word in ("Success", "Failed"))
        if done and "0 active, 0 idle" in status:
            return line
        if time.monotonic() > deadline:
            pytest.fail(f"queued experiment {name} did not finish in {QUEUE_TIMEOUT_S} s:\n{status}")
        time.sleep(3)


def model_versions(root: Path) -> list[tuple[str, str, str]]:
    """(version, the run's train.epochs, its artifact URI) of every version in ``root``'s own store."""
    from mlflow import MlflowClient

    db = root / "mlflow.db"
    if not db.is_file():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    out = []
    for v in client.search_model_versions("name='tsforecast-lstm'"):
        run = client.get_run(v.run_id)
        out.append((str(v.version), run.data.params.get("train.epochs", ""), run.info.artifact_uri))
    return out


@pytest.mark.parametrize("how", ["queue", "temp"])
def test_an_experiment_in_a_temp_copy_registers_its_version_in_the_repo_s_own_store(
    repo_copy: Path, dvc, how: str
) -> None:
    # a store of this copy's own: the built repo's store names its artifact folder
    for store in ("mlflow.db", "mlartifacts"):
        path = repo_copy / store
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    name = f"exp-{how}"
    if how == "queue":
        dvc("exp", "run", "--queue", "-S", "train.epochs=2", "-n", name)
        dvc("queue", "start")
        line = wait_for_queue(dvc, name)
        assert "Success" in line, dvc("queue", "logs", name, check=False).stdout
    else:
        dvc("exp", "run", "--temp", "-S", "train.epochs=2", "-n", name)

    versions = model_versions(repo_copy)
    assert [(v, epochs) for v, epochs, _ in versions] == [("1", "2")], versions
    assert versions[0][2].startswith((repo_copy / "mlartifacts").resolve().as_uri())
    assert list((repo_copy / ".dvc/tmp/exps").glob("**/mlflow.db")) == []
    assert name in dvc("exp", "list", "--name-only").stdout.split()  # and DVC kept the experiment
