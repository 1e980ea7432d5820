"""The champion gate's pure decision: identity first, then the baseline, the champion, experiments."""

from __future__ import annotations

from tsforecast.registry.gate import Contender, Incumbent, decide
from tsforecast.registry.lineage import task_identity

TAYLOR = task_identity("builtin:taylor", "demand", (), "30min", 48, 336).view()
OTHER_SOURCE = task_identity("data/external/other.csv", "demand", (), "30min", 48, 336).view()
SHORTER = task_identity("builtin:taylor", "demand", (), "30min", 26, 336).view()
UNKNOWN = TAYLOR.__class__(hash=None, fields={})


def contender(mse: float = 0.1, baseline: float = 0.5, identity=TAYLOR, version: int = 2) -> Contender:
    return Contender(version=version, mse_scaled=mse, baseline_mse_scaled=baseline, identity=identity)


def champion(mse: float | None = 0.2, identity=TAYLOR, note: str = "", version: int = 1) -> Incumbent:
    return Incumbent(version=version, identity=identity, mse_scaled=mse, note=note)


def test_first_version_that_beats_repeat_last_becomes_champion() -> None:
    d = decide(None, contender())
    assert d.role == "champion"
    assert (
        d.reason
        == "champion: v2: test mse_scaled 0.1 beats the repeat_last baseline's 0.5; there was no champion yet"
    )


def test_same_identity_and_a_better_score_takes_the_alias() -> None:
    d = decide(champion(0.2), contender(0.1))
    assert d.champion
    assert "beats champion v1's 0.2 and the repeat_last baseline's 0.5 on the same test windows" in d.reason


def test_same_identity_and_a_worse_score_is_challenger() -> None:
    d = decide(champion(0.05), contender(0.1))
    assert d.role == "challenger"
    assert d.reason == (
        "challenger: v2: test mse_scaled 0.1 does not beat champion v1's 0.05 on the same test windows"
    )


def test_a_model_that_does_not_beat_repeat_last_is_never_champion() -> None:
    d = decide(None, contender(mse=0.6, baseline=0.5))
    assert d.role == "challenger"
    assert "does not beat the repeat_last baseline's 0.5" in d.reason and "never champion" in d.reason


def test_another_data_source_is_registered_only_and_the_message_says_how_to_go_on() -> None:
    d = decide(champion(0.9), contender(0.1, identity=OTHER_SOURCE), alias="champion")
    assert d.role == "none"
    assert "v2 is another task than champion v1" in d.reason
    assert "data_source: v2 has data/external/other.csv, v1 has builtin:taylor" in d.reason
    assert "the champion alias stays on v1" in d.reason
    assert "set register.model_name to a new name" in d.reason
    assert "`tsforecast promote 2 --force`" in d.reason


def test_another_horizon_is_another_task_even_with_a_better_score() -> None:
    d = decide(champion(0.9), contender(0.01, identity=SHORTER))
    assert d.role == "none"
    assert "horizon: v2 has 26, v1 has 48" in d.reason


def test_a_champion_without_an_identity_is_not_replaced_by_the_gate() -> None:
    d = decide(champion(0.9, identity=UNKNOWN), contender(0.01))
    assert d.role == "none"
    assert "records no task identity" in d.reason


def test_a_champion_that_cannot_be_rescored_keeps_the_alias_and_says_why() -> None:
    d = decide(champion(None, note="its artifacts hold no model.pt"), contender(0.01))
    assert d.role == "challenger"
    assert "champion v1 keeps the alias" in d.reason
    assert "cannot be re-scored on these test windows (its artifacts hold no model.pt)" in d.reason
    assert "`tsforecast promote 2`" in d.reason


def test_an_experiment_that_would_win_gets_at_most_the_challenger_alias() -> None:
    d = decide(champion(0.2), contender(0.1), experiment="exp-horizon")
    assert d.role == "challenger"
    assert "beats champion v1's 0.2" in d.reason
    assert "`dvc exp run` (DVC_EXP_NAME=exp-horizon) get at most the challenger alias" in d.reason


def test_an_experiment_is_challenger_even_without_a_champion() -> None:
    assert decide(None, contender(), experiment="e1").role == "challenger"


def test_the_version_holding_the_alias_keeps_it_on_a_rerun() -> None:
    d = decide(champion(0.1, version=2), contender(0.1, version=2), experiment="e1")
    assert d.role == "champion" and "already holds the alias" in d.reason


def test_the_alias_name_appears_in_the_reasons() -> None:
    d = decide(champion(0.05), contender(0.1), alias="prod")
    assert "does not beat prod v1's 0.05" in d.reason
