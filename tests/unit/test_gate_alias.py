"""The gate's compare-and-set against a store where another registration writes at the same instant.

The store is a small in-memory stand-in for MlflowClient's alias calls; the database's refusal
of a second row for one alias is what MLflow's server answered in a real race (sqlite's
``UNIQUE constraint failed``), so the lost write is replayed exactly as it arrives.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from tsforecast.registry.gate import Contender, Decision, apply_alias, decide, set_alias
from tsforecast.registry.lineage import task_identity

TAYLOR = task_identity("builtin:taylor", "demand", (), "30min", 48, 336).view()
RACE = (
    "(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.workspace, "
    "registered_model_aliases.name, registered_model_aliases.alias"
)


class Store:
    """Aliases of one model; ``racer`` (alias, version) is written by 'another process' at the
    moment of our first set of that alias, which then fails as MLflow's server fails it."""

    def __init__(self, racer: tuple[str, int] | None = None) -> None:
        self.aliases: dict[str, int] = {}
        self.racer = racer

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        if alias not in self.aliases:
            raise MlflowException("no such alias", error_code=INVALID_PARAMETER_VALUE)
        return SimpleNamespace(version=str(self.aliases[alias]))

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if self.racer and self.racer[0] == alias:
            self.aliases[alias], self.racer = self.racer[1], None
            raise MlflowException(RACE, error_code=BAD_REQUEST)
        self.aliases[alias] = int(version)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias, None)


def judge_with(scores: dict[int, float], version: int):
    from tsforecast.registry.gate import Incumbent

    def judge(holder: int | None) -> Decision:
        champ = None if holder is None else Incumbent(holder, TAYLOR, scores[holder], "")
        return decide(champ, Contender(version, scores[version], 1.0, TAYLOR))

    return judge


def test_a_lost_alias_write_is_a_lost_compare_and_set_not_an_error() -> None:
    store = Store(racer=("champion", 1))
    assert set_alias(store, "m", "champion", 2) is False
    assert store.aliases["champion"] == 1


def test_another_store_error_is_raised() -> None:
    class Broken(Store):
        def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
            raise MlflowException("RESOURCE_DOES_NOT_EXIST: model m", error_code=RESOURCE_DOES_NOT_EXIST)

    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        set_alias(Broken(), "m", "champion", 2)


def test_the_better_version_takes_the_alias_after_losing_the_write_to_a_worse_one() -> None:
    store = Store(racer=("champion", 1))  # v1 (worse) writes champion at the instant v2 does
    decision, before = apply_alias(
        store, "m", ("champion", "challenger"), 2, judge_with({1: 0.3, 2: 0.1}, 2), locked=True
    )
    assert before is None
    assert decision.champion and store.aliases["champion"] == 2


def test_the_worse_version_becomes_challenger_after_losing_the_write_to_a_better_one() -> None:
    store = Store(racer=("champion", 1))  # v1 (better) wins the write
    decision, _ = apply_alias(
        store, "m", ("champion", "challenger"), 2, judge_with({1: 0.1, 2: 0.3}, 2), locked=True
    )
    assert decision.role == "challenger"
    assert store.aliases == {"champion": 1, "challenger": 2}
