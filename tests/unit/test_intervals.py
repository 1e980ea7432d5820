"""Split-conformal intervals and the forecast frame: calibration, columns, order, bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tsforecast.dataset.window import Prepared, SplitBounds, StandardScaler
from tsforecast.errors import ConfigError, DataError, ModelLoadError
from tsforecast.evaluation.intervals import (
    GRID,
    Calibration,
    calibrate,
    check_levels,
    interval_metrics,
    pinball,
)
from tsforecast.forecasting.core import calibrate_model, forecast_frame
from tsforecast.training.model import LSTMForecaster

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


# ---------------------------------------------------------------------------- forecast_frame


def tiny_model_and_extra(calibrated: bool = True) -> tuple[LSTMForecaster, dict]:
    torch.manual_seed(0)
    model = LSTMForecaster(n_features=1, input_size=12, horizon=H, hidden_size=4, num_layers=1).eval()
    extra = {
        "columns": ["y"],
        "scaler": {"mean": [50.0], "std": [10.0]},
        "freq": "h",
        "timestamp_column": "timestamp",
    }
    if calibrated:
        extra["intervals"] = calibrate(np.random.default_rng(0).normal(0, 0.5, (200, H))).to_dict()
    return model, extra


def history(n: int = 30) -> pd.DataFrame:
    ts = pd.date_range("2024-03-01", periods=n, freq="h")
    return pd.DataFrame({"timestamp": ts, "y": 50 + 10 * np.sin(np.arange(n) / 4)})


def test_forecast_frame_columns_order_bounds_and_first_step() -> None:
    model, extra = tiny_model_and_extra()
    out = forecast_frame(model, extra, history(), [80, 95])
    assert list(out.columns) == ["timestamp", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    assert len(out) == H
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-03-01 06:00") + pd.Timedelta(hours=24)
    assert (out["timestamp"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["lo_80"] <= out["forecast"]).all()
    assert (out["forecast"] <= out["hi_80"]).all() and (out["hi_80"] <= out["hi_95"]).all()


def test_forecast_frame_defaults_to_the_calibrated_levels_and_parses_text_timestamps() -> None:
    model, extra = tiny_model_and_extra()
    h = history()
    as_text = h.assign(timestamp=h["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    pd.testing.assert_frame_equal(
        forecast_frame(model, extra, as_text), forecast_frame(model, extra, h, [80])
    )


def test_uncalibrated_model_serves_point_forecasts_only_when_asked() -> None:
    model, extra = tiny_model_and_extra(calibrated=False)
    assert list(forecast_frame(model, extra, history(), []).columns) == ["timestamp", "forecast"]
    with pytest.raises(ModelLoadError, match=r"holds no interval calibration.*retrain"):
        forecast_frame(model, extra, history(), [80])


def test_too_short_history_names_the_rows_needed() -> None:
    model, extra = tiny_model_and_extra()
    with pytest.raises(DataError, match=r"5 row\(s\) given; the model needs at least input_size=12 rows"):
        forecast_frame(model, extra, history(5))


def test_calibrate_model_uses_every_validation_window() -> None:
    model, _ = tiny_model_and_extra()
    n = 120
    series = np.sin(np.arange(n) / 4)[:, None].astype("float32")
    prepared = Prepared(
        series=series,
        scaler=StandardScaler((0.0,), (1.0,)),
        bounds=SplitBounds((0, 60), (60, 90), (90, 120), True),
        columns=["y"],
        timestamps=pd.date_range("2024-01-01", periods=n, freq="h"),
        freq="h",
        input_size=12,
        horizon=H,
        stride=1,
    )
    cal = calibrate_model(model, prepared)
    assert cal.n == 30 - H + 1  # targets inside the val rows, inputs looking back
