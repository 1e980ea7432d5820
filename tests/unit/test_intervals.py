"""Split-conformal intervals: calibration, coverage, bounds, levels (the forecast frame's intervals:
tests/unit/test_forecast_core.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tsforecast.errors import ConfigError
from tsforecast.evaluation.intervals import (
    GRID,
    Calibration,
    calibrate,
    check_levels,
    interval_metrics,
    pinball,
)

H = 6


def ar1_noise(n: int, h: int, rng: np.random.Generator, scale: np.ndarray) -> np.ndarray:
    """(n, h) residuals: correlated in time like forecast errors, spread growing with the step."""
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = 0.7 * e[i - 1] + rng.normal(0, 1)
    e /= e.std()
    return e[:, None] * scale[None] + rng.normal(0, 0.3, (n, h)) * scale[None]


def test_coverage_on_held_out_noise_lands_near_nominal() -> None:
    rng = np.random.default_rng(0)
    scale = np.linspace(0.2, 1.0, H)
    cal = calibrate(ar1_noise(2000, H, rng, scale))
    later = ar1_noise(5000, H, rng, scale)
    point = rng.normal(0, 1, later.shape)
    for level in (50, 80, 95):
        by_level, _ = interval_metrics(point + later, point, cal, [level])
        assert abs(by_level[f"{level}"]["coverage"] - level / 100) < 0.03, (level, by_level)


def test_intervals_widen_with_the_step_and_follow_skewed_residuals() -> None:
    rng = np.random.default_rng(1)
    scale = np.linspace(0.2, 1.0, H)
    skewed = rng.exponential(1.0, (3000, H)) * scale[None] - 0.2 * scale[None]  # long upper tail
    cal = calibrate(skewed)
    lo, hi = cal.bounds(np.zeros((1, H)), 80)
    width = (hi - lo)[0]
    assert np.all(np.diff(width) > 0)
    assert np.all(hi[0] > -lo[0])  # asymmetric: more room above


def test_bounds_always_hold_the_point_forecast() -> None:
    biased = np.full((100, H), 2.0) + np.random.default_rng(2).normal(0, 0.1, (100, H))  # always above
    lo, hi = calibrate(biased).bounds(np.ones((3, H)), 80)
    assert np.all(lo <= 1.0) and np.all(hi >= 1.0)


def test_holdout_check_is_fit_on_the_first_half_of_validation_only() -> None:
    rng = np.random.default_rng(3)
    r = np.concatenate([rng.normal(0, 1, (200, H)), rng.normal(0, 3, (200, H))])  # drift in val
    cal = calibrate(r)
    check = cal.holdout["80"]
    assert check["n_calibration"] == 200 and check["n_check"] == 200 - H
    assert check["coverage"] < 0.5  # the widening is visible on validation data alone


def test_calibration_round_trips_through_the_model_extra() -> None:
    cal = calibrate(np.random.default_rng(4).normal(0, 1, (300, H)))
    again = Calibration.from_extra({"intervals": cal.to_dict()})
    np.testing.assert_allclose(again.quantiles, cal.quantiles)
    assert again.n == 300 and again.default_levels == (80.0,) and again.quantiles.shape == (len(GRID), H)


def test_pinball_of_the_true_quantile_beats_a_shifted_one() -> None:
    y = np.random.default_rng(5).normal(0, 1, 20000)
    assert pinball(y, np.full_like(y, 1.2816), 0.9) < pinball(y, np.full_like(y, 0.5), 0.9)


@pytest.mark.parametrize("bad", [0, 100, -5, True, "80"])
def test_bad_level_is_named(bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"level {bad!r} is not a percentage in \(0, 99\]"):
        check_levels([bad])  # type: ignore[list-item]
