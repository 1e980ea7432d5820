"""dataset/auto.py: what `auto` resolves to for the seasonal period and the input size, and why."""

from __future__ import annotations

import numpy as np
import pytest

from tsforecast.dataset import auto


@pytest.mark.parametrize(
    ("freq", "expected"),
    [("h", (24, 168)), ("30min", (48, 336)), ("15min", (96, 672)), ("D", (7,)), ("W", (52,)), ("MS", (12,))],
)
def test_period_candidates_follow_the_frequency(freq, expected):
    assert auto.period_candidates(freq) == expected


def _series(n: int, weekly: float, seed: int = 0) -> np.ndarray:
    """Hourly: a daily cycle plus a weekday/weekend step of size ``weekly``."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    day = np.sin(2 * np.pi * t / 24)
    weekend = weekly * ((t // 24) % 7 >= 5)
    return 10 + day + weekend + 0.05 * rng.standard_normal(n)


def test_a_strong_weekly_pattern_picks_the_weekly_period_and_says_why():
    choice = auto.seasonal_period("h", [_series(24 * 7 * 4, weekly=3.0)])
    assert choice.value == 168
    assert "168 steps a week at 'h'" in choice.why and "of the daily one's" in choice.why


def test_a_daily_pattern_keeps_the_daily_period():
    choice = auto.seasonal_period("h", [_series(24 * 7 * 4, weekly=0.0, seed=s) for s in range(3)])
    assert choice.value == 24 and "not 95% or less" in choice.why


def test_too_few_weeks_never_tests_the_weekly_period():
    choice = auto.seasonal_period("h", [_series(24 * 7 * 2, weekly=3.0)])
    assert choice.value == 24 and "too few weeks" in choice.why


def test_input_size_is_a_week_of_steps_for_sub_daily_data():
    assert auto.input_size("30min", period=336, horizon=48, shortest_train=2822).value == 336
    assert auto.input_size("h", period=24, horizon=48, shortest_train=600).value == 168


def test_input_size_is_periods_for_daily_data_and_at_least_twice_the_horizon():
    assert auto.input_size("D", period=7, horizon=7, shortest_train=1000).value == 28
    assert auto.input_size("D", period=7, horizon=30, shortest_train=1000).value == 60


def test_input_size_shrinks_for_short_series_and_says_why():
    choice = auto.input_size("h", period=24, horizon=48, shortest_train=200)
    assert choice.value == 200 - 48 - auto.MIN_TRAIN_WINDOWS + 1
    assert "fewer than 32 windows" in choice.why
