"""benchmarks/scale_data.py: synthetic panels that are fast, small, positive, seasonal and reproducible."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from benchmarks.scale_data import PANEL_START, synthetic_panel, synthetic_params, synthetic_values
from tsforecast.evaluation import m4


def test_ten_thousand_series_of_a_thousand_build_in_seconds_and_little_memory() -> None:
    tracemalloc.start()  # numpy and pandas report their buffers to tracemalloc
    started = time.perf_counter()
    try:
        frame = synthetic_panel(10_000, 1_000)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 10.0, f"took {seconds:.1f} s (about 1 s on a free core)"
    assert peak < 400e6, f"peak {peak / 1e6:.0f} MB (about 160 MB expected)"
    assert frame.shape == (10_000_000, 3)
    assert frame["value"].dtype == np.float32
    assert isinstance(frame["unique_id"].dtype, pd.CategoricalDtype)
    assert frame.memory_usage(deep=True).sum() < 200e6


def test_rows_are_series_then_time_on_one_grid() -> None:
    frame = synthetic_panel(3, 50)
    assert list(frame.columns) == ["unique_id", "timestamp", "value"]
    assert frame["unique_id"].astype(str).tolist() == ["S0"] * 50 + ["S1"] * 50 + ["S2"] * 50
    expected = pd.date_range(PANEL_START, periods=50, freq="h")
    for _, group in frame.groupby("unique_id", observed=True):
        assert (group["timestamp"].to_numpy() == expected.to_numpy()).all()


def test_values_are_positive_finite_and_reproducible() -> None:
    a, b = synthetic_values(200, 500, seed=3), synthetic_values(200, 500, seed=3)
    assert a.shape == (200, 500)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all() and (a > 0).all()
    assert not np.array_equal(a, synthetic_values(200, 500, seed=4))


def test_series_scale_follows_the_drawn_level() -> None:
    params = synthetic_params(300, seed=1)
    values = synthetic_values(300, 1000, seed=1)
    ratio = np.median(values, axis=1) / params["level"].to_numpy()
    assert np.all((ratio > 0.4) & (ratio < 2.0))  # trend, cycles and noise stay within these factors
    assert np.corrcoef(np.log(np.median(values, axis=1)), np.log(params["level"]))[0, 1] > 0.95


def test_hourly_series_carry_a_daily_cycle_that_m4_detects() -> None:
    values = synthetic_values(100, 1000, seed=0).astype(np.float64)
    assert m4.seasonality_test(values, 24).mean() > 0.9


def test_daily_steps_drop_the_daily_cycle_and_keep_the_weekly_one() -> None:
    frame = synthetic_panel(2, 30, freq="D")
    steps = frame.loc[frame["unique_id"] == "S1", "timestamp"].diff().dropna()
    assert (steps == pd.Timedelta(days=1)).all() and len(steps) == 29
    values = synthetic_values(50, 700, freq="D", seed=0).astype(np.float64)
    assert m4.seasonality_test(values, 7).mean() > 0.5


def test_a_calendar_frequency_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"freq 'MS' is not a fixed time step - use one like 'h'"):
        synthetic_panel(2, 10, freq="MS")


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"n_series": 0}, "n_series=0"), ({"length": 1}, "length=1")]
)
def test_bad_sizes_are_named(kwargs: dict[str, int], message: str) -> None:
    args = {"n_series": 2, "length": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic_panel(**args)


def test_varying_lengths_keep_each_series_tail_and_end_together() -> None:
    full = synthetic_panel(40, 300, seed=5)
    short = synthetic_panel(40, 300, seed=5, min_length=200)
    sizes = short.groupby("unique_id", observed=True).size()
    assert sizes.between(200, 300).all() and sizes.nunique() > 10
    last = short.groupby("unique_id", observed=True)["timestamp"].max()
    assert (last == PANEL_START + pd.Timedelta(hours=299)).all()
    for sid in ("S0", "S17", "S39"):  # the kept steps are the full series' last ones, unchanged
        tail = full.loc[full["unique_id"] == sid].iloc[-sizes[sid] :].reset_index(drop=True)
        pd.testing.assert_frame_equal(short.loc[short["unique_id"] == sid].reset_index(drop=True), tail)


@pytest.mark.parametrize("min_length", [1, 301, 2.5])
def test_a_bad_min_length_is_named(min_length: float) -> None:
    with pytest.raises(
        ValueError, match=rf"min_length={min_length!r} must be an integer from 2 to length=300"
    ):
        synthetic_panel(3, 300, min_length=min_length)  # type: ignore[arg-type]
