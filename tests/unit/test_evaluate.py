"""evaluate.py: metrics and baselines against hand-computed values, the evaluate.json contract, plots.

The in-memory case: a scaled target ``s_t = PATTERN[t % 4] + 0.25 t`` (every value a multiple
of 0.25, so float32 holds it exactly) with a scaler of mean 10 and std 2. One season back
(period 4) the series is exactly 1.0 lower, so the seasonal-naive forecast misses every
step by -1 on the scaled axis and by -2 in data units, and its MASE is exactly 1.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tsforecast.config import config_from_dict
from tsforecast.dataset.window import Prepared, SplitBounds, StandardScaler, run_window
from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.evaluate import (
    BASELINES,
    MODEL_KEY,
    all_metrics,
    mase_scale,
    plot_error_by_step,
    plot_forecasts,
    point_metrics,
    repeat_last,
    run_evaluate,
    score,
    seasonal_naive,
)
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths
from tsforecast.training.model import LSTMForecaster, save_model

# the metrics/evaluate.json contract (/work/shared/DESIGN.md, "Outputs (contract)")
METRIC_KEYS = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows"}
TOP_KEYS = METRIC_KEYS | {"baselines", "beats", "horizon", "input_size", "seasonal_period"}

PATTERN = np.array([0.0, 1.0, -1.0, 0.5])
PERIOD, L, H, N_ROWS = 4, 8, 3, 60
SLOPE = 0.25  # s_t - s_{t-4} = 4 * 0.25 = 1.0
MEAN, STD = 10.0, 2.0
BOUNDS = SplitBounds(train=(0, 36), val=(36, 48), test=(48, 60), look_back=True)
TEST_STARTS = list(range(48 - L, 60 - L - H + 1))  # 40..49: targets fill the test rows


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _series(n: int = N_ROWS) -> np.ndarray:
    t = np.arange(n)
    return (PATTERN[t % PERIOD] + SLOPE * t).astype(np.float32)[:, None]  # (rows, 1), scaled


def _prepared(series: np.ndarray | None = None) -> Prepared:
    series = _series() if series is None else series
    return Prepared(
        series=series,
        scaler=StandardScaler(mean=(MEAN,), std=(STD,)),
        bounds=BOUNDS,
        columns=["y"],
        timestamps=pd.date_range("2024-01-01", periods=len(series), freq="30min"),
        freq="30min",
        input_size=L,
        horizon=H,
        stride=1,
    )


def _model(kind: str = "repeat_last", n_features: int = 1, input_size: int = L) -> LSTMForecaster:
    """A model whose forecast is known exactly, built from the window norm and the linear skip.

    With window_norm=last the output is ``head(h) + skip(x - last) + last``; a zero head and a
    zero skip give the last value (``repeat_last``); a one-hot skip row on the lag one season
    back gives the seasonal-naive forecast; its bias of +1 adds the trend back (``perfect``).
    """
    torch.manual_seed(0)
    model = LSTMForecaster(n_features, input_size, H, hidden_size=4, num_layers=1, window_norm="last")
    assert model.skip is not None
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.skip.weight.zero_()
        model.skip.bias.zero_()
        if kind in {"seasonal_naive", "perfect"}:
            for h in range(H):
                model.skip.weight[h, input_size + h - PERIOD] = 1.0  # h < PERIOD: one season back
        if kind == "perfect":
            model.skip.bias.fill_(PERIOD * SLOPE)
    return model.eval()


def _expected_windows(series: np.ndarray, starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (N, L), targets (N, H)) of the target column, by plain slicing."""
    s = series[:, 0].astype(np.float64)
    return np.array([s[i : i + L] for i in starts]), np.array([s[i + L : i + L + H] for i in starts])


# ---------------------------------------------------------------- point metrics


def test_point_metrics_match_hand_computed_values():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 1.0, 4.0])  # errors 1, 0, -2, 0
    m = point_metrics(y, p)
    assert m["mse"] == pytest.approx(5 / 4)
    assert m["mae"] == pytest.approx(3 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    # sMAPE = 100 * mean(2|e| / (|y| + |p|)) = 100 * mean(2/3, 0, 4/4, 0)
    assert m["smape"] == pytest.approx(100 * (2 / 3 + 1.0) / 4)
    assert set(m) == {"mse", "mae", "rmse", "smape"}


def test_point_metrics_work_on_two_dimensional_windows():
    y = np.array([[0.0, 1.0], [2.0, 3.0]])
    p = np.array([[1.0, 1.0], [2.0, 0.0]])  # errors 1, 0, 0, -3
    m = point_metrics(y, p)
    assert m["mse"] == pytest.approx(10 / 4)
    assert m["mae"] == pytest.approx(4 / 4)
    assert m["smape"] == pytest.approx(100 * (2 / 1 + 0 + 0 + 6 / 3) / 4)


def test_smape_counts_zero_over_zero_as_a_perfect_forecast():
    m = point_metrics(np.array([0.0, 0.0, 2.0]), np.array([0.0, 0.0, 2.0]))
    assert m == {"mse": 0.0, "mae": 0.0, "rmse": 0.0, "smape": 0.0}
    m = point_metrics(np.array([0.0, 0.0]), np.array([0.0, 3.0]))  # 0/0 -> 0, then 6/3 = 2
    assert m["smape"] == pytest.approx(100.0)
    assert np.isfinite(m["smape"])


def test_smape_is_symmetric_and_bounded_by_200():
    y, p = np.array([1.0, -2.0, 5.0]), np.array([3.0, 2.0, 0.0])
    assert point_metrics(y, p)["smape"] == pytest.approx(point_metrics(p, y)["smape"])
    assert point_metrics(np.array([0.0]), np.array([7.0]))["smape"] == pytest.approx(200.0)


def test_mase_scale_is_the_in_sample_seasonal_naive_mae():
    train = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert mase_scale(train, 2) == pytest.approx((1 + 2 + 2) / 3)  # |2-1|, |5-3|, |4-2|
    assert mase_scale(train, 4) == pytest.approx(3.0)  # |4-1|
    assert mase_scale(train, 1) == pytest.approx((2 + 1 + 3 + 1) / 4)


def test_mase_scale_falls_back_to_lag_one_when_train_is_not_longer_than_the_period():
    train = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    lag_one = (2 + 1 + 3 + 1) / 4
    assert mase_scale(train, 5) == pytest.approx(lag_one)
    assert mase_scale(train, 50) == pytest.approx(lag_one)
    assert math.isnan(mase_scale(np.array([3.0]), 1))


def test_all_metrics_reports_units_through_the_scaler_and_mase_over_the_given_scale():
    prepared = _prepared()
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    p = np.array([[0.5, 1.0], [1.0, -1.0]])  # scaled errors 0.5, 0, 0, -1
    m = all_metrics(y, p, prepared, mase_denominator=0.5)
    assert m["mse_scaled"] == pytest.approx((0.25 + 1) / 4)
    assert m["mae_scaled"] == pytest.approx(1.5 / 4)
    assert m["mse"] == pytest.approx(STD**2 * (0.25 + 1) / 4)  # unit errors are STD times larger
    assert m["mae"] == pytest.approx(STD * 1.5 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert m["mase"] == pytest.approx(m["mae"] / 0.5)
    yu, pu = MEAN + STD * y, MEAN + STD * p
    assert m["smape"] == pytest.approx(100 * np.mean(2 * np.abs(pu - yu) / (np.abs(yu) + np.abs(pu))))
    assert m["n_windows"] == 2
    assert set(m) == METRIC_KEYS


def test_all_metrics_mase_is_nan_when_the_scale_is_zero():
    m = all_metrics(np.zeros((1, 2)), np.ones((1, 2)), _prepared(), mase_denominator=0.0)
    assert math.isnan(m["mase"])
    assert m["mae"] == pytest.approx(STD)


# ---------------------------------------------------------------- baselines


def test_repeat_last_repeats_each_windows_last_value():
    x = np.arange(12.0).reshape(2, 6)
    out = repeat_last(x, 4)
    assert out.shape == (2, 4)
    assert out.tolist() == [[5.0] * 4, [11.0] * 4]


def test_seasonal_naive_on_an_arange_window_reads_one_season_back():
    x = np.arange(16.0).reshape(2, 8)  # rows 0..7 and 8..15
    out = seasonal_naive(x, 5, 3)
    assert out.shape == (2, 5)
    # step h predicts row 8+h-1 from row 8+h-1-3*ceil(h/3): 5, 6, 7, then 5, 6 again
    assert out[0].tolist() == [5.0, 6.0, 7.0, 5.0, 6.0]
    assert out[1].tolist() == [13.0, 14.0, 15.0, 13.0, 14.0]


def test_seasonal_naive_with_the_period_equal_to_the_window():
    x = np.arange(6.0)[None, :]
    assert seasonal_naive(x, 8, 6).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 1.0]]


def test_seasonal_naive_is_perfect_on_a_periodic_series():
    period, horizon = 4, 10
    series = np.tile(PATTERN, 10)  # 40 steps, period 4
    starts = np.arange(0, 40 - 8 - horizon + 1)
    x = np.stack([series[s : s + 8] for s in starts])
    y = np.stack([series[s + 8 : s + 8 + horizon] for s in starts])
    pred = seasonal_naive(x, horizon, period)
    assert pred.shape == (len(starts), horizon)
    np.testing.assert_array_equal(pred, y)
    assert not np.array_equal(repeat_last(x, horizon), y)


def test_seasonal_period_longer_than_the_window_is_refused_naming_it_and_the_fix():
    with pytest.raises(
        ConfigError,
        match=r"evaluate\.seasonal_period=9 exceeds window\.input_size=8; .*raise input_size or lower the period",
    ):
        seasonal_naive(np.zeros((3, 8)), 2, 9)


# ---------------------------------------------------------------- score(): the evaluate.json contract


def test_score_returns_every_key_of_the_evaluate_json_contract():
    scores = score(_model(), _prepared(), PERIOD)
    m = scores.metrics
    assert set(m) == TOP_KEYS
    assert set(m["baselines"]) == set(BASELINES) == {"repeat_last", "seasonal_naive"}
    for name in BASELINES:
        assert set(m["baselines"][name]) == METRIC_KEYS
        assert m["baselines"][name]["n_windows"] == m["n_windows"]
    assert set(m["beats"]) == set(BASELINES)
    assert all(isinstance(v, bool) for v in m["beats"].values())
    assert (m["horizon"], m["input_size"], m["seasonal_period"]) == (H, L, PERIOD)
    assert m["n_windows"] == len(TEST_STARTS) == 10
    json.loads(json.dumps(m, allow_nan=False))  # plain JSON: no numpy scalars, no NaN


def test_score_windows_are_every_stride_one_test_window():
    prepared = _prepared()
    scores = score(_model(), prepared, PERIOD)
    assert scores.starts.tolist() == TEST_STARTS
    _, y = _expected_windows(prepared.series, TEST_STARTS)
    assert scores.y.shape == (10, H)
    np.testing.assert_array_equal(scores.y, y)
    assert set(scores.preds) == {MODEL_KEY, *BASELINES}
    for name, pred in scores.preds.items():
        assert pred.shape == (10, H), name


def test_score_baseline_forecasts_match_their_definitions():
    prepared = _prepared()
    scores = score(_model(), prepared, PERIOD)
    x, y = _expected_windows(prepared.series, TEST_STARTS)
    np.testing.assert_array_equal(scores.preds["repeat_last"], np.repeat(x[:, -1:], H, axis=1))
    np.testing.assert_array_equal(scores.preds["seasonal_naive"], x[:, L - PERIOD : L - PERIOD + H])
    np.testing.assert_array_equal(scores.preds["seasonal_naive"] - y, -np.ones((10, H)))


def test_score_seasonal_naive_metrics_by_hand():
    sn = score(_model(), _prepared(), PERIOD).metrics["baselines"]["seasonal_naive"]
    # every scaled error is -1; in units -STD = -2; the train rows' seasonal MAE is also 2
    assert sn["mse_scaled"] == pytest.approx(1.0)
    assert sn["mae_scaled"] == pytest.approx(1.0)
    assert sn["mse"] == pytest.approx(4.0)
    assert sn["mae"] == pytest.approx(2.0)
    assert sn["rmse"] == pytest.approx(2.0)
    assert sn["mase"] == pytest.approx(1.0)
    _, y = _expected_windows(_series(), TEST_STARTS)
    yu, pu = MEAN + STD * y, MEAN + STD * (y - 1)
    assert sn["smape"] == pytest.approx(100 * np.mean(2 * np.abs(pu - yu) / (np.abs(yu) + np.abs(pu))))


def test_score_repeat_last_metrics_by_hand():
    prepared = _prepared()
    rl = score(_model(), prepared, PERIOD).metrics["baselines"]["repeat_last"]
    x, y = _expected_windows(prepared.series, TEST_STARTS)
    err = x[:, -1:] - y
    assert rl["mse_scaled"] == pytest.approx(np.mean(err**2))
    assert rl["mae_scaled"] == pytest.approx(np.mean(np.abs(err)))
    assert rl["mse"] == pytest.approx(STD**2 * np.mean(err**2))
    assert rl["mase"] == pytest.approx(STD * np.mean(np.abs(err)) / 2.0)


def test_a_model_that_repeats_the_last_value_ties_that_baseline_and_does_not_beat_it():
    scores = score(_model("repeat_last"), _prepared(), PERIOD)
    np.testing.assert_array_equal(scores.preds[MODEL_KEY], scores.preds["repeat_last"])
    m = scores.metrics
    assert {k: m[k] for k in METRIC_KEYS} == m["baselines"]["repeat_last"]
    assert m["beats"]["repeat_last"] is False  # a tie is not a win
    assert m["beats"]["seasonal_naive"] is (m["mse_scaled"] < 1.0)


def test_a_model_equal_to_seasonal_naive_beats_repeat_last_only():
    m = score(_model("seasonal_naive"), _prepared(), PERIOD).metrics
    assert m["mse_scaled"] == pytest.approx(1.0)
    assert m["mase"] == pytest.approx(1.0)
    assert m["beats"] == {"repeat_last": True, "seasonal_naive": False}


def test_a_perfect_model_scores_zero_and_beats_both_baselines():
    scores = score(_model("perfect"), _prepared(), PERIOD)
    np.testing.assert_allclose(scores.preds[MODEL_KEY], scores.y, atol=1e-6)
    m = scores.metrics
    for key in ("mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape"):
        assert m[key] == pytest.approx(0.0, abs=1e-5), key
    assert m["beats"] == {"repeat_last": True, "seasonal_naive": True}


def test_error_by_step_has_one_row_per_horizon_step():
    scores = score(_model("seasonal_naive"), _prepared(), PERIOD)
    df = scores.by_step
    assert len(df) == H
    assert df["step"].tolist() == [1, 2, 3]
    expected_cols = {"step"} | {f"{n}_{m}_scaled" for n in (MODEL_KEY, *BASELINES) for m in ("mse", "mae")}
    assert set(df.columns) == expected_cols
    np.testing.assert_allclose(df["seasonal_naive_mse_scaled"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(df["seasonal_naive_mae_scaled"], [1.0, 1.0, 1.0])
    err = scores.preds["repeat_last"] - scores.y
    np.testing.assert_allclose(df["repeat_last_mse_scaled"], (err**2).mean(axis=0), rtol=1e-6)
    for name in (MODEL_KEY, *BASELINES):  # every step has the same windows: the mean is the total
        total = scores.metrics if name == MODEL_KEY else scores.metrics["baselines"][name]
        assert df[f"{name}_mse_scaled"].mean() == pytest.approx(total["mse_scaled"], rel=1e-5)


def test_score_on_the_val_part_uses_the_val_windows():
    scores = score(_model(), _prepared(), PERIOD, part="val")
    assert scores.starts.tolist() == list(range(36 - L, 48 - L - H + 1))
    assert scores.metrics["n_windows"] == 10


def test_score_refuses_a_model_built_for_other_windows():
    with pytest.raises(DataError, match=r"model expects \(input_size, horizon, features\)=\(12, 3, 1\) "
                                        r"but the data gives \(8, 3, 1\); retrain or re-window"):  # fmt: skip
        score(_model(input_size=12), _prepared(), PERIOD)
    with pytest.raises(DataError, match=r"=\(8, 3, 2\) but the data gives \(8, 3, 1\)"):
        score(_model(n_features=2), _prepared(), PERIOD)


def test_score_refuses_a_seasonal_period_longer_than_the_window():
    with pytest.raises(ConfigError, match=r"evaluate\.seasonal_period=9 exceeds window\.input_size=8"):
        score(_model(), _prepared(), 9)


# ---------------------------------------------------------------- plots


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_forecasts_writes_a_png_of_evenly_spaced_windows(tmp_path):
    prepared = _prepared()
    scores = score(_model(), prepared, PERIOD)
    path = tmp_path / "plots" / "forecast.png"
    picks = plot_forecasts(scores, prepared, 3, "demand", path)
    assert picks == sorted(picks) and len(picks) == 3
    assert picks[0] == 0 and picks[-1] == len(scores.starts) - 1
    assert _is_png(path)
    assert plot_forecasts(scores, prepared, 50, "demand", tmp_path / "all.png") == list(range(10))
    assert len(plot_forecasts(scores, prepared, 0, "demand", tmp_path / "one.png")) == 1
    assert not list(tmp_path.glob("**/.*.tmp-*")), "the atomic write left a temp file"


def test_plot_error_by_step_writes_a_png(tmp_path):
    scores = score(_model("seasonal_naive"), _prepared(), PERIOD)
    path = tmp_path / "error_by_step.png"
    plot_error_by_step(scores, path)
    assert _is_png(path)


# ---------------------------------------------------------------- run_evaluate: files on disk


def test_run_evaluate_writes_the_contract_and_the_plots(tmp_path):
    cfg = config_from_dict(
        {
            "data": {"target": "y"},
            "split": {"train": 36, "val": 12, "test": 12},  # counts: lookback auto -> True
            "window": {"input_size": L, "horizon": H},
            "evaluate": {"seasonal_period": PERIOD, "plot_windows": 2},
        }
    )
    paths = Paths.from_root(tmp_path)
    paths.validated.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=N_ROWS, freq="30min"),
            "y": MEAN + STD * _series()[:, 0].astype(np.float64),
        }
    )
    frame.to_parquet(paths.validated / VALIDATED_FILE, index=False)
    write_json(paths.validated / VALIDATED_META, {"freq": "30min"})
    run_window(cfg.data, cfg.split, cfg.window, paths)
    save_model(_model("repeat_last"), paths.models / "model.pt")  # exact: no float noise in the ties

    result = run_evaluate(cfg.data, cfg.evaluate, cfg.forecast, paths)

    m = json.loads((paths.metrics / "evaluate.json").read_text())
    assert set(m) == TOP_KEYS | {"intervals", "pinball_scaled", "interval_method"}
    for name in BASELINES:
        assert set(m["baselines"][name]) == METRIC_KEYS | {"intervals", "pinball_scaled"}
    # the model is repeat_last, calibrated on the same val windows as the baseline: same intervals
    assert set(m["intervals"]["80"]) == {"coverage", "width_scaled"}
    assert m["intervals"] == m["baselines"]["repeat_last"]["intervals"]
    assert m["pinball_scaled"] == pytest.approx(m["baselines"]["repeat_last"]["pinball_scaled"])
    assert m["n_windows"] == result.n_windows == 10
    # the window stage refits the scaler on the train rows, so check what does not depend on it
    assert m["baselines"]["seasonal_naive"]["mase"] == pytest.approx(1.0, rel=1e-4)
    assert m["mse_scaled"] == m["baselines"]["repeat_last"]["mse_scaled"]
    assert m["mase"] == pytest.approx(m["baselines"]["repeat_last"]["mase"])
    assert m["beats"]["repeat_last"] is False
    assert result.beats_baselines is False
    assert result.mse_scaled == pytest.approx(m["mse_scaled"], abs=1e-6)
    assert result.seasonal_naive_mse_scaled == pytest.approx(
        m["baselines"]["seasonal_naive"]["mse_scaled"], abs=1e-6
    )

    steps = json.loads((paths.plots / "error_by_step.json").read_text())
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert set(steps[0]) == {"step", MODEL_KEY, *BASELINES}
    forecast = json.loads((paths.plots / "forecast.json").read_text())
    assert len(forecast) == H
    first_target = 48  # the first test window starts at 40 and forecasts rows 48..50
    assert [r["actual"] for r in forecast] == pytest.approx(
        frame["y"].iloc[first_target : first_target + H].tolist()
    )
    assert forecast[0]["timestamp"] == str(frame["timestamp"].iloc[first_target])
    assert _is_png(paths.plots / "forecast.png")
    assert _is_png(paths.plots / "error_by_step.png")
    # the files a panel writes per series (dvc.yaml outs) hold the one series
    row = pd.read_parquet(paths.metrics / "by_series.parquet")
    assert row["series"].tolist() == ["y"] and row["n_windows"].tolist() == [10]
    assert row["lstm_mse_scaled"][0] == m["mse_scaled"]
    assert row["seasonal_naive_mase"][0] == m["baselines"]["seasonal_naive"]["mase"]
    assert row["coverage_80"][0] == m["intervals"]["80"]["coverage"]
    assert _is_png(paths.plots / "worst_series.png")


def test_worst_windows_are_the_largest_lstm_errors_in_time_order():
    from tsforecast.evaluation.evaluate import Scores, worst_windows

    y = np.zeros((5, H))
    p = np.array([[0.1], [3.0], [0.2], [2.0], [0.0]]).repeat(H, axis=1)
    scores = Scores(metrics={}, by_step=pd.DataFrame(), starts=np.arange(5), y=y, preds={MODEL_KEY: p})
    assert worst_windows(scores, 2) == [1, 3]
