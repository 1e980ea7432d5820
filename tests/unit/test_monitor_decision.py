"""monitoring/decision.py and expected.py: the retrain rule, one reason per rule, and the band."""

from __future__ import annotations

import pandas as pd
import pytest

from tsforecast.monitoring import decision as rules
from tsforecast.monitoring.expected import SD_FLOOR, expected_from_backtest, robust_sd
from tsforecast.monitoring.records import drift_episode_start, last_challenge
from tsforecast.monitoring.types import Expected

BAND = Expected(mse_scaled=0.01, sd=0.005, upper=0.025, n_cutoffs=5, band=3.0, source="test")


def _drift(drifted: bool, share: float = 1.0) -> dict:
    return {
        "n_series": 1, "n_drifted": int(drifted), "share_drifted": share if drifted else 0.0, "drifted": drifted,
        "thresholds": {"level": 0.5, "scale": 0.4, "profile": 0.35, "share": 0.0},
        "largest": {"level": 0.9 if drifted else 0.1, "scale": 0.01, "profile": 0.1},
        "series": [{"series": "demand", "drifted": "level", "level": 0.9}] if drifted else [],
    }  # fmt: skip


def _decide(rolling=(0.01,), expected=BAND, drift=None, age="1D", champion="3", **kw) -> object:
    age = pd.Timedelta(age) if age is not None else None
    patience, recent, max_age = kw.get("patience", 2), kw.get("recent", 3), kw.get("max_age", "7D")
    return rules.decide([
        rules.champion_check(champion),
        rules.realized_check(champion, list(rolling), expected, recent, patience),
        rules.drift_check(drift or _drift(False), kw.get("acted_since")),
        rules.age_check(champion, age, max_age),
    ])  # fmt: skip


def test_no_champion_means_train_one() -> None:
    d = _decide(rolling=(), champion=None, age=None)

    assert d.retrain
    assert d.reasons == ["no champion: no forecast has been delivered yet, so train one"]


def test_realized_error_above_the_band_for_patience_origins_retrains_naming_the_numbers() -> None:
    d = _decide(rolling=(0.01, 0.03, 0.04))

    assert d.retrain and len(d.reasons) == 1
    assert d.reasons[0].startswith("realized mse_scaled 0.04 (pooled over the last 3 origins) stayed above")
    assert "expected upper 0.025 for 2 origin(s) in a row (monitor.patience=2" in d.reasons[0]


def test_one_origin_above_the_band_is_not_enough_with_patience_two() -> None:
    d = _decide(rolling=(0.01, 0.01, 0.05))

    assert not d.retrain
    assert "is above the expected upper 0.025 for 1 of monitor.patience=2 origins" in d.reasons[0]


def test_patience_one_retrains_on_the_first_origin_above_the_band() -> None:
    assert _decide(rolling=(0.05,), patience=1).retrain


def test_without_a_backtest_band_the_realized_error_cannot_trigger() -> None:
    d = _decide(rolling=(5.0, 5.0, 5.0), expected=None)

    assert not d.retrain
    assert "no expected band for v3: no backtest of it was found" in d.reasons[0]


def test_drift_past_its_threshold_retrains_and_names_the_series() -> None:
    d = _decide(drift=_drift(True))

    assert d.retrain
    assert d.reasons[0].startswith("drift in 1 of 1 series (100% > monitor.drift_share=0): demand (level)")


def test_drift_that_was_acted_on_does_not_retrain_again_until_it_clears() -> None:
    d = _decide(drift=_drift(True), acted_since="2000-08-22T23:30:00")

    assert not d.retrain
    assert "drift persists in 1 of 1 series" in d.reasons[0] and "since 2000-08-22T23:30:00" in d.reasons[0]


def test_a_champion_older_than_max_age_retrains() -> None:
    d = _decide(age="8D")

    assert d.retrain
    assert d.reasons == [
        "champion v3 is 8.0 days old: its training data ended (or a retrain last challenged it) 8.0 days "
        "before the newest row (monitor.max_age=7D)"
    ]


def test_max_age_null_never_retrains_for_age() -> None:
    assert not _decide(age="800D", max_age=None).retrain


def test_every_fired_rule_is_a_reason() -> None:
    d = _decide(rolling=(0.05, 0.05), drift=_drift(True), age="9D")

    assert d.retrain
    assert [c.rule for c in d.checks if c.triggered] == ["realized", "drift", "age"]
    assert len(d.reasons) == 3


def test_keeping_the_champion_says_why_each_rule_did_not_fire() -> None:
    d = _decide()

    assert not d.retrain and len(d.reasons) == 1
    reason = d.reasons[0]
    assert reason.startswith("keep the champion: champion v3 delivers the forecasts; ")
    for part in ("within the expected band (upper 0.025)", "no drift past the thresholds", "1.0 days old"):
        assert part in reason


def test_expected_band_is_the_backtest_mse_plus_band_times_the_robust_spread_of_its_cutoffs() -> None:
    cuts = [0.02, 0.015, 0.007, 0.016, 0.0135]
    e = expected_from_backtest(
        {"mse_scaled": 0.0144, "by_cutoff": [{"mse_scaled": c} for c in cuts]}, 3.0, "x"
    )

    assert e is not None
    assert e.sd == pytest.approx(max(robust_sd(cuts), SD_FLOOR * 0.0144))
    assert e.upper == pytest.approx(0.0144 + 3.0 * e.sd)
    assert e.n_cutoffs == 5


def test_one_cutoff_across_a_level_shift_does_not_blow_up_the_band() -> None:
    cuts = [0.01, 0.011, 0.009, 0.012, 2.5]  # the last cutoff's horizon straddles a shift

    e = expected_from_backtest({"mse_scaled": 0.5, "by_cutoff": [{"mse_scaled": c} for c in cuts]}, 3.0, "x")

    assert e is not None and e.upper < 1.0


def test_a_band_needs_a_finite_backtest_mse() -> None:
    assert expected_from_backtest({"mse_scaled": float("nan")}, 3.0, "x") is None
    assert expected_from_backtest({}, 3.0, "x") is None


def test_the_decision_log_tells_when_drift_began_and_when_the_champion_was_last_challenged() -> None:
    log = [
        {"data_end": "d1", "drift": {"drifted": False}, "decision": {"retrain": True}},
        {"data_end": "d2", "drift": {"drifted": True}, "decision": {"retrain": True}},
        {"data_end": "d3", "drift": {"drifted": True}, "decision": {"retrain": False}},
    ]

    assert drift_episode_start(log) == "d2"
    assert drift_episode_start([*log, {"data_end": "d4", "drift": {"drifted": False}}]) is None
    assert last_challenge(log) == "d2"
