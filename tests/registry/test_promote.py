"""``tsforecast promote VERSION``: a deliberate move of the champion alias, refused across tasks."""

from __future__ import annotations

import getpass

import pytest

from tests.helpers.mlflow_fixtures import (  # noqa: F401
    Repo,
    client_for,
    fixture_tiny_repo,
    fixture_tiny_repo_template,
    perturb_model,
    register,
    run_stages,
)
from tsforecast.cli import main
from tsforecast.errors import RegistryError
from tsforecast.registry.promote import run_promote


def holder(repo: Repo, alias: str = "champion") -> int:
    return int(client_for(repo).get_model_version_by_alias("tiny-lstm", alias).version)


@pytest.fixture(name="two_tasks")
def fixture_two_tasks(tiny_repo: Repo) -> Repo:
    """v1 champion (horizon 6), v2 a worse challenger of the same task, v3 another task (horizon 4)."""
    assert register(tiny_repo).champion
    perturb_model(tiny_repo, noise=0.05)
    assert register(tiny_repo).aliases == ["challenger"]
    tiny_repo.set_params(window={"horizon": 4})
    run_stages(tiny_repo.root, ("window", "train", "evaluate"))
    assert register(tiny_repo).aliases == []
    return tiny_repo


def test_promote_moves_the_alias_within_a_task_and_records_who_and_why(two_tasks: Repo) -> None:
    result = run_promote(2, two_tasks.cfg.register, two_tasks.paths, reason="rollback test")
    assert holder(two_tasks) == 2
    assert (result.version, result.previous_version, result.forced) == (2, 1, False)
    v2 = client_for(two_tasks).get_model_version("tiny-lstm", "2")
    assert v2.aliases == ["champion"]  # the challenger alias left it
    note = v2.tags["tsforecast.promotion"]
    assert note.startswith(f"promoted to @champion by {getpass.getuser()} at ")
    assert note.endswith("(was v1): rollback test")
    assert v2.tags["tsforecast.promoted_by"] == getpass.getuser()


def test_promote_refuses_another_task_without_force_naming_the_fields_and_the_flag(two_tasks: Repo) -> None:
    with pytest.raises(RegistryError) as err:
        run_promote(3, two_tasks.cfg.register, two_tasks.paths)
    message = str(err.value)
    assert message.startswith("v3 is another task than @champion v1 (horizon: v3 has 4, v1 has 6)")
    assert "pass --force" in message
    assert holder(two_tasks) == 1
    assert "tsforecast.promotion" not in client_for(two_tasks).get_model_version("tiny-lstm", "3").tags


def test_promote_with_force_moves_the_alias_across_tasks(two_tasks: Repo) -> None:
    result = run_promote(3, two_tasks.cfg.register, two_tasks.paths, force=True)
    assert holder(two_tasks) == 3 and result.forced is True
    note = client_for(two_tasks).get_model_version("tiny-lstm", "3").tags["tsforecast.promotion"]
    assert "(was v1) across task identities (--force)" in note


def test_cli_promote_refusal_is_one_line_and_exit_1(two_tasks: Repo, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["promote", "3", "--root", str(two_tasks.root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: v3 is another task than @champion v1")
    assert main(["promote", "3", "--force", "--reason", "new series", "--root", str(two_tasks.root)]) == 0
    assert holder(two_tasks) == 3


def test_promote_an_unknown_version_names_the_versions(two_tasks: Repo) -> None:
    with pytest.raises(
        RegistryError, match=r"model 'tiny-lstm' has no version 9; its versions are \[1, 2, 3\]"
    ):
        run_promote(9, two_tasks.cfg.register, two_tasks.paths)
