"""A DVC experiment's temporary copy records into the user's repo (tsforecast.paths, issue 19 item 11)."""

from __future__ import annotations

from pathlib import Path

from tsforecast.paths import DVC_ROOT_ENV, Paths, exp_copy_parent, user_root
from tsforecast.registry.tracking import tracking_uri


def test_a_repo_is_its_own_user_root(tmp_path: Path) -> None:
    assert exp_copy_parent(tmp_path) is None
    assert user_root(tmp_path, {DVC_ROOT_ENV: str(tmp_path)}) == tmp_path.resolve()


def test_a_temp_experiment_copy_resolves_to_the_repo_dvc_names(tmp_path: Path) -> None:
    copy = tmp_path / "repo/.dvc/tmp/exps/tmpab12cd"
    assert exp_copy_parent(copy) == (tmp_path / "repo").resolve()
    assert user_root(copy, {DVC_ROOT_ENV: str(tmp_path / "repo")}) == (tmp_path / "repo").resolve()


def test_without_dvc_root_the_path_alone_decides(tmp_path: Path) -> None:
    copy = tmp_path / "repo/.dvc/tmp/exps/tmpab12cd/sub"
    assert user_root(copy, {}) == (tmp_path / "repo").resolve()
    # a DVC_ROOT that is the copy itself (DVC's default for a plain repro inside it) is not the user's repo
    assert user_root(copy, {DVC_ROOT_ENV: str(copy)}) == (tmp_path / "repo").resolve()


def test_the_folder_that_holds_the_temp_dirs_is_no_copy(tmp_path: Path) -> None:
    assert exp_copy_parent(tmp_path / "repo/.dvc/tmp/exps") is None


def test_the_default_store_of_a_temp_copy_is_the_user_s_mlflow_db(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(DVC_ROOT_ENV, str(tmp_path / "repo"))
    copy = Paths(tmp_path / "repo/.dvc/tmp/exps/tmpab12cd")
    assert tracking_uri(copy) == f"sqlite:///{(tmp_path / 'repo').resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(copy) == "http://127.0.0.1:5000"
