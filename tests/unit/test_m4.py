"""M4 measures and benchmarks: by-hand values, M4's definitions, and the reference libraries."""

from __future__ import annotations

import numpy as np
import pytest

from tsforecast.data.datasets import m4_hourly_arrays
from tsforecast.evaluation import m4

HOURS = np.arange(24 * 20)  # 20 days of hourly steps


@pytest.fixture(scope="module")
def m4_series() -> list[np.ndarray]:
    return m4_hourly_arrays()[1][:20]


def daily_cycle(level: float = 100.0, amplitude: float = 0.3) -> np.ndarray:
    return level * (1.0 + amplitude * np.sin(2 * np.pi * HOURS / 24))


def test_smape_by_hand() -> None:
    got = m4.smape(np.array([[100.0, 200.0]]), np.array([[110.0, 180.0]]))
    assert got == pytest.approx([100.0 * (10 / 210 + 20 / 380)])


def test_smape_counts_a_zero_forecast_of_a_zero_actual_as_exact() -> None:
    assert m4.smape([[0.0, 10.0]], [[0.0, 0.0]]).tolist() == [100.0]


def test_mase_by_hand_scales_by_the_in_sample_seasonal_naive_error() -> None:
    insample = np.array([1.0, 2.0, 4.0, 5.0, 7.0, 8.0])  # lag-2 differences: 3, 3, 3, 3
    assert m4.mase_scale(insample, 2).tolist() == [3.0]
    got = m4.mase([[9.0, 12.0]], [[10.0, 10.0]], insample, 2)  # MAE 1.5
    assert got.tolist() == [0.5]


def test_mase_falls_back_to_lag_one_for_a_series_shorter_than_m() -> None:
    assert m4.mase_scale([np.array([1.0, 4.0, 2.0])], 24).tolist() == [2.5]


def test_mase_uses_lag_one_unless_longer_than_m_and_one_value_has_no_scale() -> None:
    insample = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert m4.mase_scale(insample, 4).tolist() == [3.0]  # |4 - 1|: one lag-4 difference
    assert m4.mase_scale(insample, 5).tolist() == [(2 + 1 + 3 + 1) / 4]  # as long as m: lag one
    assert np.isnan(m4.mase_scale(np.array([3.0]), 1)).all()


def test_smape_is_symmetric_and_bounded_by_200() -> None:
    y, f = np.array([[1.0, -2.0, 5.0]]), np.array([[3.0, 2.0, 0.0]])
    assert m4.smape(y, f) == pytest.approx(m4.smape(f, y))
    assert m4.smape([[0.0]], [[7.0]]).tolist() == [200.0]


def test_seasonal_naive_repeats_the_last_cycle() -> None:
    assert m4.seasonal_naive_forecast(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 3, 2).tolist() == [[4, 5, 4]]


def test_naive_repeats_the_last_value() -> None:
    assert m4.naive_forecast([np.array([3.0, 1.0]), np.array([7.0])], 2).tolist() == [[1, 1], [7, 7]]


def test_acf_matches_statsmodels(m4_series: list[np.ndarray]) -> None:
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    x = m4_series[0]
    expected = stattools.acf(x, nlags=24, fft=False, adjusted=False)
    np.testing.assert_allclose(m4.acf(x[None, :], 24)[0], expected, rtol=1e-10)


def test_seasonality_test_detects_a_strong_daily_cycle() -> None:
    noise = np.random.default_rng(0).normal(0.0, 2.0, HOURS.size)
    assert m4.seasonality_test(daily_cycle() + noise, 24).tolist() == [True]


def test_seasonality_test_flags_about_one_white_noise_series_in_ten() -> None:
    noise = 100.0 + np.random.default_rng(1).normal(0.0, 1.0, (1000, HOURS.size))
    rate = m4.seasonality_test(noise, 24).mean()  # |r_m| > 1.645 se: a 10 % false-positive rate
    assert 0.06 < rate < 0.14


def test_seasonality_test_rejects_short_series_and_m_of_one() -> None:
    short = daily_cycle()[: 3 * 24 - 1]  # seasonal, but M4 asks for 3 full cycles
    assert m4.seasonality_test([short, daily_cycle()], 24).tolist() == [False, True]
    assert m4.seasonality_test(daily_cycle(), 1).tolist() == [False]


def test_seasonality_test_applies_the_m4_limit(m4_series: list[np.ndarray]) -> None:
    x = m4_series[0]
    r = m4.acf(x[None, :], 24)[0]
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[1:24] ** 2)) / x.size)
    assert m4.seasonality_test(x, 24)[0] == (abs(r[24]) > limit)


def test_seasonal_indices_match_statsmodels_classical_decomposition(m4_series: list[np.ndarray]) -> None:
    seasonal = pytest.importorskip("statsmodels.tsa.seasonal")
    for x, m in ((m4_series[1], 24), (m4_series[2][:101], 7)):  # even and odd m
        expected = seasonal.seasonal_decompose(x, model="multiplicative", period=m).seasonal[:m]
        np.testing.assert_allclose(m4.seasonal_indices(x, m)[0], expected, rtol=1e-12)


def test_seasonal_indices_refuse_non_positive_values_and_name_the_series() -> None:
    x = daily_cycle()
    x[5] = 0.0
    with pytest.raises(ValueError, match=r"series 1 has a value <= 0 \(0.0\)"):
        m4.seasonal_indices([daily_cycle(), x], 24)


def test_naive2_of_a_non_seasonal_series_is_naive() -> None:
    noise = 100.0 + np.random.default_rng(2).normal(0.0, 1.0, HOURS.size)
    assert m4.seasonality_test(noise, 24).tolist() == [False]
    np.testing.assert_array_equal(m4.naive2_forecast(noise, 48, 24), m4.naive_forecast(noise, 48))
    np.testing.assert_array_equal(
        m4.naive2_forecast(daily_cycle(), 5, 1), m4.naive_forecast(daily_cycle(), 5)
    )


def test_naive2_continues_an_exact_multiplicative_cycle() -> None:
    shape = 1.0 + 0.5 * np.cos(2 * np.pi * np.arange(24 * 22) / 24)
    x = 50.0 * shape
    got = m4.naive2_forecast(x[: 24 * 20 + 5], 30, 24)[0]
    np.testing.assert_allclose(got, x[24 * 20 + 5 : 24 * 20 + 35], rtol=1e-12)


def test_naive2_matches_m4_recipe_built_on_statsmodels(m4_series: list[np.ndarray]) -> None:
    seasonal = pytest.importorskip("statsmodels.tsa.seasonal")
    got = m4.naive2_forecast(m4_series, 48, 24)
    for x, row in zip(m4_series, got, strict=True):
        si = seasonal.seasonal_decompose(x, model="multiplicative", period=24).seasonal
        if not m4.seasonality_test(x, 24)[0]:
            si = np.ones_like(x)
        expected = (x / si)[-1] * np.tile(si[-24:], 2)  # M4: tail(seasonal, m) repeated
        np.testing.assert_allclose(row, expected, rtol=1e-12)


def test_ragged_panel_equals_series_one_by_one(m4_series: list[np.ndarray]) -> None:
    panel = [m4_series[0][:300], m4_series[1], m4_series[2][:500]]
    together = m4.naive2_forecast(panel, 48, 24)
    alone = np.vstack([m4.naive2_forecast(x, 48, 24) for x in panel])
    np.testing.assert_array_equal(together, alone)


def test_owa_of_naive2_itself_is_exactly_one(m4_series: list[np.ndarray]) -> None:
    insample = [x[:-48] for x in m4_series]
    actuals = np.stack([x[-48:] for x in m4_series])
    aggregate, per = m4.panel_scores(actuals, m4.naive2_forecast(insample, 48, 24), insample, 24)
    assert aggregate["owa"] == 1.0
    assert aggregate["baselines"]["naive2"]["owa"] == 1.0
    assert (per["smape"] == per["smape_naive2"]).all()


def test_owa_is_the_ratio_of_average_errors_not_the_average_of_ratios() -> None:
    insample = [np.arange(1.0, 11.0), np.arange(1.0, 11.0) * 10]
    actuals = np.array([[11.0, 12.0], [150.0, 160.0]])
    forecasts = np.array([[11.0, 13.0], [140.0, 170.0]])
    aggregate, per = m4.panel_scores(actuals, forecasts, insample, 1, ids=["a", "b"])
    expected = 0.5 * (
        per["smape"].mean() / per["smape_naive2"].mean() + per["mase"].mean() / per["mase_naive2"].mean()
    )
    per_series = 0.5 * (per["smape"] / per["smape_naive2"] + per["mase"] / per["mase_naive2"]).mean()
    assert aggregate["owa"] == pytest.approx(expected)
    assert abs(expected - per_series) > 0.03
    assert per["id"].tolist() == ["a", "b"]
    assert per["mase"].tolist() == pytest.approx([0.5, 1.0])  # MAE 0.5 and 10 over scales 1 and 10


def test_panel_scores_reports_seasonal_naive_and_counts(m4_series: list[np.ndarray]) -> None:
    insample = [x[:-48] for x in m4_series]
    actuals = np.stack([x[-48:] for x in m4_series])
    snaive = m4.seasonal_naive_forecast(insample, 48, 24)
    aggregate, per = m4.panel_scores(actuals, snaive, insample, 24)
    assert aggregate["baselines"]["seasonal_naive"] == {k: aggregate[k] for k in ("smape", "mase", "owa")}
    assert aggregate["n_series"] == aggregate["n_series_mase"] == 20
    assert aggregate["n_seasonal"] == int(per["seasonal"].sum())
    assert (aggregate["seasonal_period"], aggregate["horizon"]) == (24, 48)
    assert list(per.columns) == [
        "id",
        "smape",
        "mase",
        "smape_naive2",
        "mase_naive2",
        "smape_seasonal_naive",
        "mase_seasonal_naive",
        "seasonal",
        "mase_scale",
    ]


def test_a_constant_series_is_left_out_of_the_mase_averages_only() -> None:
    insample = [np.full(10, 5.0), np.arange(1.0, 11.0)]
    aggregate, per = m4.panel_scores([[5.0], [12.0]], [[6.0], [11.0]], insample, 1)
    assert aggregate["n_series_mase"] == 1
    assert aggregate["mase"] == pytest.approx(1.0)  # series 2 only: MAE 1 over scale 1
    assert aggregate["smape"] == pytest.approx(per["smape"].mean())
    assert np.isinf(per["mase"][0])


def test_panel_scores_names_the_series_with_a_nan_forecast() -> None:
    with pytest.raises(ValueError, match=r"forecasts hold NaN or inf for 1 series \(first: \['H2'\]\)"):
        m4.panel_scores([[1.0], [2.0]], [[1.0], [np.nan]], [np.ones(3), np.ones(3)], 1, ids=["H1", "H2"])


def test_panel_scores_refuses_mismatched_shapes_with_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"actuals have shape \(1, 2\) but forecasts \(1, 3\)"):
        m4.panel_scores([[1.0, 2.0]], [[1.0, 2.0, 3.0]], [np.ones(5)], 1)
    with pytest.raises(ValueError, match="2 in-sample series for 1 rows of actuals"):
        m4.panel_scores([[1.0]], [[1.0]], [np.ones(5), np.ones(5)], 1)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_a_bad_seasonal_period_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match=rf"seasonal period m={bad!r} must be a positive integer"):
        m4.seasonality_test(np.ones(10), bad)  # type: ignore[arg-type]


def test_missing_in_sample_values_are_refused_with_the_position() -> None:
    with pytest.raises(ValueError, match="in-sample series 0 holds NaN or inf at position 2"):
        m4.naive_forecast(np.array([1.0, 2.0, np.nan]), 1)
