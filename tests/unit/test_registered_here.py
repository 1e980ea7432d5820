"""registered.json is in git, its registry is not: a clone or a copy with another store ignores it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsforecast.io import write_json
from tsforecast.paths import Paths
from tsforecast.registry.tracking import registered_here, tracking_uri


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _record(paths: Paths, uri: str | None) -> dict:
    record = {"model_name": "m", "version": 1, "champion_version": 1}
    if uri is not None:
        record["tracking_uri"] = uri
    write_json(paths.reports / "registered.json", record)
    return record


def test_a_record_of_this_repos_store_is_read(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    assert registered_here(paths) is None  # register has not run
    record = _record(paths, tracking_uri(paths))
    assert registered_here(paths) == record


def test_a_record_of_another_machines_store_counts_as_not_registered_here(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "clone")
    _record(paths, "sqlite:////somewhere/else/mlflow.db")
    assert registered_here(paths) is None


def test_a_linked_store_is_the_same_store(tmp_path: Path) -> None:
    root, scratch = Paths(tmp_path), Paths(tmp_path / ".refresh")
    (tmp_path / "mlflow.db").write_bytes(b"")
    scratch.root.mkdir()
    (scratch.root / "mlflow.db").symlink_to(tmp_path / "mlflow.db")
    record = _record(scratch, tracking_uri(root))  # copied from the checkout into its refresh root
    assert registered_here(scratch) == record


def test_a_record_naming_no_store_is_taken_as_this_ones(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    record = _record(paths, None)
    assert registered_here(paths) == record
