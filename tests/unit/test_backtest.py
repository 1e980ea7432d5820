"""backtest.py: origin placement, per-origin metrics against hand computations, the backtest.json contract.

The in-memory case is evaluate's: a scaled target ``s_t = PATTERN[t % 4] + 0.25 t`` (multiples of
0.25, exact in float32) with a scaler of mean 10 and std 2. One season back (period 4) the series
is exactly 1.0 lower, so a seasonal-naive forecast misses every step by -1 (scaled), -2 (units).
Rows: train 0..35, val 36..47, test 48..59; L=8, H=3, so the test windows start at 40..49 and
their origins (last observed rows) are 47..56.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tsforecast.config import BacktestConfig, EvaluateConfig, config_from_dict
from tsforecast.dataset.window import Prepared, SplitBounds, StandardScaler, run_window
from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.backtest import (
    backtest_metrics,
    cutoff_rows,
    forecast_rows,
    forecasts_at,
    run_backtest,
)
from tsforecast.evaluation.evaluate import BASELINES, MODEL_KEY, score
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths
from tsforecast.training.model import LSTMForecaster, save_model

# the metrics/backtest.json contract (/work/shared/DESIGN.md, "Outputs (contract)")
METRIC_KEYS = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape"}
TOP_KEYS = METRIC_KEYS | {
    "n_cutoffs", "baselines", "by_cutoff", "beats", "refit", "horizon", "input_size", "seasonal_period"
}  # fmt: skip

PATTERN = np.array([0.0, 1.0, -1.0, 0.5])
PERIOD, L, H, N_ROWS = 4, 8, 3, 60
SLOPE = 0.25
MEAN, STD = 10.0, 2.0
BOUNDS = SplitBounds(train=(0, 36), val=(36, 48), test=(48, 60), look_back=True)
ALL_ORIGINS = list(range(47, 57))  # test windows start at 40..49; origin = start + L - 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _series(n: int = N_ROWS) -> np.ndarray:
    t = np.arange(n)
    return (PATTERN[t % PERIOD] + SLOPE * t).astype(np.float32)[:, None]  # (rows, 1), scaled


def _prepared(bounds: SplitBounds = BOUNDS) -> Prepared:
    return Prepared(
        series=_series(),
        scaler=StandardScaler(mean=(MEAN,), std=(STD,)),
        bounds=bounds,
        columns=["y"],
        timestamps=pd.date_range("2024-01-01", periods=N_ROWS, freq="30min"),
        freq="30min",
        input_size=L,
        horizon=H,
        stride=1,
    )


def _model(kind: str) -> LSTMForecaster:
    """Exact forecasts from the window norm and the linear skip (see tests/unit/test_evaluate.py):
    zero head and skip repeat the last value; a one-hot skip one season back is seasonal naive."""
    torch.manual_seed(0)
    model = LSTMForecaster(1, L, H, hidden_size=4, num_layers=1, window_norm="last")
    assert model.skip is not None
    with torch.no_grad():
        for p in (model.head.weight, model.head.bias, model.skip.weight, model.skip.bias):
            p.zero_()
        if kind == "seasonal_naive":
            for h in range(H):
                model.skip.weight[h, L + h - PERIOD] = 1.0
    return model.eval()


def _run(kind: str, n_cutoffs: int, prepared: Prepared | None = None) -> dict:
    prepared = prepared or _prepared()
    origins = cutoff_rows(prepared, n_cutoffs)
    y, preds = forecasts_at(_model(kind), prepared, origins, PERIOD)
    return backtest_metrics(y, preds, prepared, origins, PERIOD)


# ---------------------------------------------------------------- origin placement


def test_cutoffs_are_spread_evenly_from_the_first_to_the_last_test_origin():
    assert cutoff_rows(_prepared(), 4).tolist() == [47, 50, 53, 56]
    assert cutoff_rows(_prepared(), 2).tolist() == [47, 56]


def test_every_origin_has_horizon_actuals_after_it_inside_the_test_rows():
    for n in range(1, len(ALL_ORIGINS) + 1):
        origins = cutoff_rows(_prepared(), n)
        assert len(set(origins.tolist())) == n
        assert all(BOUNDS.test[0] <= o + 1 and o + H <= BOUNDS.test[1] - 1 for o in origins)
        assert all(o - L + 1 >= 0 for o in origins)


def test_one_cutoff_is_the_first_test_origin_and_as_many_as_windows_is_every_origin():
    assert cutoff_rows(_prepared(), 1).tolist() == [47]
    assert cutoff_rows(_prepared(), 10).tolist() == ALL_ORIGINS


def test_without_look_back_the_origins_leave_l_rows_of_test_input():
    bounds = SplitBounds(train=(0, 36), val=(36, 48), test=(48, 60), look_back=False)
    # windows read and forecast inside the test rows only: starts 48..49, origins 55..56
    assert cutoff_rows(_prepared(bounds), 2).tolist() == [55, 56]


def test_more_cutoffs_than_test_origins_is_refused_naming_the_value_and_the_limit():
    with pytest.raises(DataError) as e:
        cutoff_rows(_prepared(), 11)
    msg = str(e.value)
    assert "backtest.n_cutoffs=11" in msg
    assert "has 10 forecast origins with 3 actual values after them" in msg
    assert "1 <= n_cutoffs <= 10" in msg


def test_n_cutoffs_below_one_is_a_config_error_naming_the_value():
    with pytest.raises(ConfigError, match=r"backtest\.n_cutoffs=0 is invalid: must be an integer >= 1"):
        config_from_dict({"backtest": {"n_cutoffs": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'backtest.n_cutoff'"):
        config_from_dict({"backtest": {"n_cutoff": 3}})
    assert config_from_dict({}).backtest.n_cutoffs == 5


# ---------------------------------------------------------------- metrics per origin, by hand


def test_repeat_last_at_the_first_origin_matches_a_hand_computation():
    m = _run("seasonal_naive", 4)
    first = m["by_cutoff"][0]
    assert first["cutoff"] == "2024-01-01T23:30:00"  # row 47, 30-minute steps
    # s_47 = 0.5 + 11.75 = 12.25 is repeated; actuals s_48..s_50 = 12.0, 13.25, 11.5
    errors = np.array([12.25 - 12.0, 12.25 - 13.25, 12.25 - 11.5])  # 0.25, -1, 0.75
    rl = first["baselines"]["repeat_last"]
    assert rl["mse_scaled"] == pytest.approx(np.mean(errors**2))
    assert rl["mae_scaled"] == pytest.approx(np.mean(np.abs(errors)))
    assert rl["mse"] == pytest.approx(STD**2 * np.mean(errors**2))  # data units: STD times the error
    assert rl["mae"] == pytest.approx(STD * np.mean(np.abs(errors)))
    assert rl["mase"] == pytest.approx(STD * np.mean(np.abs(errors)) / 2.0)  # in-sample seasonal MAE: 2


def test_every_origin_by_hand_for_the_model_and_both_baselines():
    s = _series()[:, 0].astype(np.float64)
    m = _run("seasonal_naive", 4)
    for entry, o in zip(m["by_cutoff"], [47, 50, 53, 56], strict=True):
        actual = s[o + 1 : o + 1 + H]
        assert pd.Timestamp(entry["cutoff"]) == pd.Timestamp("2024-01-01") + o * pd.Timedelta("30min")
        # the model is seasonal naive: every step misses by exactly -1 (scaled), -2 (units)
        assert entry["mse_scaled"] == pytest.approx(1.0)
        assert entry["mae_scaled"] == pytest.approx(1.0)
        assert entry["mse"] == pytest.approx(4.0)
        assert entry["mase"] == pytest.approx(1.0)
        assert entry["baselines"]["seasonal_naive"]["mse_scaled"] == pytest.approx(1.0)
        rl_err = s[o] - actual
        assert entry["baselines"]["repeat_last"]["mse_scaled"] == pytest.approx(np.mean(rl_err**2))
        yu, pu = MEAN + STD * actual, MEAN + STD * s[o]
        smape = 100 * np.mean(2 * np.abs(pu - yu) / (np.abs(yu) + np.abs(pu)))
        assert entry["baselines"]["repeat_last"]["smape"] == pytest.approx(smape)


def test_pooled_metrics_are_over_every_origin_and_step():
    m = _run("repeat_last", 4)
    per_origin = [c["mse_scaled"] for c in m["by_cutoff"]]
    assert m["mse_scaled"] == pytest.approx(np.mean(per_origin))  # each origin has H steps
    assert m["mae_scaled"] == pytest.approx(np.mean([c["mae_scaled"] for c in m["by_cutoff"]]))
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert m["mse_scaled"] == pytest.approx(m["baselines"]["repeat_last"]["mse_scaled"])
    assert m["beats"] == {"repeat_last": False, "seasonal_naive": m["mse_scaled"] < 1.0}


def test_with_every_test_origin_the_backtest_equals_evaluate():
    prepared = _prepared()
    m = _run("repeat_last", len(ALL_ORIGINS), prepared)
    scores = score(_model("repeat_last"), prepared, PERIOD).metrics
    for key in METRIC_KEYS:
        assert m[key] == pytest.approx(scores[key]), key
        for name in BASELINES:
            assert m["baselines"][name][key] == pytest.approx(scores["baselines"][name][key]), (name, key)


def test_backtest_metrics_carry_every_contract_key():
    m = _run("repeat_last", 3)
    assert set(m) == TOP_KEYS
    assert m["n_cutoffs"] == len(m["by_cutoff"]) == 3
    assert m["refit"] is False
    assert set(m["baselines"]) == set(BASELINES)
    for entry in m["by_cutoff"]:
        assert set(entry) == METRIC_KEYS | {"cutoff", "baselines"}
        for name in BASELINES:
            assert set(entry["baselines"][name]) == METRIC_KEYS
    json.dumps(m, allow_nan=False)


def test_forecast_rows_hold_each_origin_and_step_in_data_units():
    prepared = _prepared()
    origins = cutoff_rows(prepared, 2)
    y, preds = forecasts_at(_model("seasonal_naive"), prepared, origins, PERIOD)
    frame = forecast_rows(y, preds, prepared, origins)
    assert list(frame.columns) == ["cutoff", "timestamp", "step", "actual", MODEL_KEY, *BASELINES]
    assert len(frame) == 2 * H
    assert frame["step"].tolist() == [1, 2, 3, 1, 2, 3]
    assert (frame["timestamp"] - frame["cutoff"] == frame["step"] * pd.Timedelta("30min")).all()
    s = MEAN + STD * _series()[:, 0].astype(np.float64)
    assert frame["actual"].tolist() == pytest.approx(np.concatenate([s[48:51], s[57:60]]).tolist())
    assert (frame["actual"] - frame[MODEL_KEY]).tolist() == pytest.approx([2.0] * 6)


def test_a_model_built_for_other_windows_is_refused():
    model = LSTMForecaster(1, L + 1, H, hidden_size=4, num_layers=1)
    with pytest.raises(DataError, match=r"model expects \(input_size, horizon, features\)=\(9, 3, 1\)"):
        forecasts_at(model, _prepared(), np.array([47]), PERIOD)


# ---------------------------------------------------------------- run_backtest: files on disk


def test_run_backtest_writes_the_contract_the_rows_and_the_plots(tmp_path):
    cfg = config_from_dict(
        {
            "data": {"target": "y"},
            "split": {"train": 36, "val": 12, "test": 12},
            "window": {"input_size": L, "horizon": H},
            "evaluate": {"seasonal_period": PERIOD},
            "backtest": {"n_cutoffs": 4},
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
    save_model(_model("seasonal_naive"), paths.models / "model.pt")

    result = run_backtest(cfg.evaluate, cfg.backtest, paths)

    m = json.loads((paths.metrics / "backtest.json").read_text())
    assert set(m) == TOP_KEYS
    assert m["n_cutoffs"] == result.n_cutoffs == 4
    assert [c["cutoff"] for c in m["by_cutoff"]] == [
        str(frame["timestamp"][o].isoformat()) for o in (47, 50, 53, 56)
    ]
    assert result.first_cutoff == "2024-01-01T23:30:00" and result.refit is False
    # the window stage refits the scaler on the train rows; MASE does not depend on it
    assert m["mase"] == pytest.approx(1.0, rel=1e-4)
    rows = pd.read_parquet(paths.metrics / "backtest.parquet")
    assert len(rows) == 4 * H
    assert rows["actual"].tolist() == pytest.approx(
        np.concatenate([frame["y"].to_numpy()[o + 1 : o + 1 + H] for o in (47, 50, 53, 56)]).tolist()
    )
    plot_rows = json.loads((paths.plots / "backtest.json").read_text())
    assert [r["origin"] for r in plot_rows] == [1, 2, 3, 4]
    assert set(plot_rows[0]) == {"origin", "cutoff", MODEL_KEY, *BASELINES}
    assert (paths.plots / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_backtest_before_the_window_stage_names_the_missing_file(tmp_path):
    paths = Paths.from_root(tmp_path)
    with pytest.raises(DataError, match=r"series.npy not found; run `tsforecast window`"):
        run_backtest(EvaluateConfig(), BacktestConfig(), paths)
