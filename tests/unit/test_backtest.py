"""backtest: origin placement, per-origin metrics against hand computations, the backtest.json contract
and the stage's files, for one series and for a panel (S in {1, 3}).

The by-hand case is evaluate's (tests/helpers/eval_fixtures.py, ``pattern_frame``): series i is
``LEVEL_i + AMP_i * s_t``, exactly ``AMP_i`` higher than one season (4 steps) earlier, with
``60 + 4 i`` rows. Split counts 36/12/12 (one series: from the start; a panel: at each series' end),
L=8, H=3: series i's test windows start at ``40..49 + 4 i``, their origins (last observed rows)
are ``47..56 + 4 i``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.eval_fixtures import (
    ID,
    PERIOD,
    Y,
    amp,
    level,
    make_panel,
    panel_frame,
    pattern,
    pattern_frame,
    repeat_last_model,
    run_stage,
    seasonal_naive_model,
    write_repo,
)
from tsforecast.config import BacktestConfig, EvaluateConfig, config_from_dict
from tsforecast.dataset.panel import Panel
from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.backtest import backtest_model, origins_per_series, run_backtest
from tsforecast.evaluation.evaluate import evaluate_model
from tsforecast.evaluation.names import BASELINES, FORECASTERS, MODEL_KEY
from tsforecast.evaluation.scoring import window_index
from tsforecast.paths import Paths
from tsforecast.training.model import LSTMForecaster

pytestmark = pytest.mark.usefixtures("one_torch_thread")

L, H = 8, 3
SPLIT = {"train": 36, "val": 12, "test": 12}
WINDOW = {"input_size": L, "horizon": H}
ALL_ORIGINS = list(range(47, 57))  # series 0; series i: 4 i later
METRIC_KEYS = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape"}
TOP_KEYS = METRIC_KEYS | {
    "n_cutoffs", "baselines", "by_cutoff", "beats", "refit", "horizon", "input_size", "seasonal_period"
}  # fmt: skip
S_VALUES = pytest.mark.parametrize("S", [1, 3])


def pattern_panel(S: int, split: dict | None = None) -> Panel:
    return make_panel(pattern_frame(S), split or SPLIT, WINDOW)


def origins(panel: Panel, n: int) -> np.ndarray:
    """(S, n) local origin rows of ``n`` origins per series."""
    idx, _ = window_index(panel, "test", n)
    return (idx[:, 1] + L - 1).reshape(panel.n_series, n)


def run(kind: str, S: int, n: int) -> tuple[dict, pd.DataFrame]:
    model = seasonal_naive_model(L, H) if kind == "seasonal_naive" else repeat_last_model(L, H)
    return backtest_model(model, pattern_panel(S), PERIOD, n, in_process=True)


def series_units(i: int) -> np.ndarray:
    return level(i) + amp(i) * pattern(60 + 4 * i)


# ---------------------------------------------------------------------------- origin placement


@S_VALUES
def test_origins_are_spread_evenly_from_the_first_to_the_last_test_origin(S: int) -> None:
    panel = pattern_panel(S)
    shift = 4 * np.arange(S)[:, None]
    np.testing.assert_array_equal(origins(panel, 4), np.array([47, 50, 53, 56]) + shift)
    np.testing.assert_array_equal(origins(panel, 2), np.array([47, 56]) + shift)


@S_VALUES
def test_every_origin_has_horizon_actuals_after_it_inside_the_test_rows(S: int) -> None:
    panel = pattern_panel(S)
    test = panel.part_bounds("test")
    for n in range(1, len(ALL_ORIGINS) + 1):
        o = origins(panel, n)
        assert all(len(set(row)) == n for row in o.tolist())
        assert (test[:, :1] <= o + 1).all() and (o + H <= test[:, 1:] - 1).all()
        assert (o - L + 1 >= 0).all()


@S_VALUES
def test_one_origin_is_the_first_test_origin_and_as_many_as_windows_is_every_origin(S: int) -> None:
    panel = pattern_panel(S)
    shift = 4 * np.arange(S)[:, None]
    np.testing.assert_array_equal(origins(panel, 1), 47 + shift)
    np.testing.assert_array_equal(origins(panel, 10), np.array(ALL_ORIGINS) + shift)


def test_without_look_back_the_origins_leave_l_rows_of_test_input() -> None:
    panel = pattern_panel(1, {**SPLIT, "lookback": False})
    # windows read and forecast inside the test rows only: starts 48..49, origins 55..56
    assert origins(panel, 2).tolist() == [[55, 56]]


@pytest.mark.parametrize(("S", "n", "total"), [(1, 11, 10), (3, 31, 30)])
def test_more_origins_than_the_test_period_holds_are_refused_naming_the_value_and_the_limit(
    S: int, n: int, total: int
) -> None:
    with pytest.raises(DataError) as e:
        origins_per_series(pattern_panel(S), n)
    msg = str(e.value)
    assert f"backtest.n_cutoffs={n} but the test period ({12 * S} rows of {S} series, horizon 3)" in msg
    assert f"has {total} forecast origins with 3 actual values after them" in msg
    assert "use 1 <= n_cutoffs <= 10 or a larger split.test" in msg


def test_more_origins_than_a_series_test_part_holds_use_what_every_series_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert origins_per_series(pattern_panel(3), 12) == 10
    assert "backtest.n_cutoffs=12 but the shortest test part allows 10 origin(s) per series" in caplog.text


@S_VALUES
def test_under_the_m4_protocol_every_series_has_one_origin_whatever_is_asked(S: int) -> None:
    frame = panel_frame([24, 30, 20][:S], period=PERIOD)
    panel = make_panel(frame, {"train": 11, "val": 3, "test": 3, "anchor": "end"}, WINDOW)
    assert origins_per_series(panel, 5) == 1


def test_n_cutoffs_below_one_is_a_config_error_naming_the_value() -> None:
    with pytest.raises(ConfigError, match=r"backtest\.n_cutoffs=0 is invalid: must be an integer >= 1"):
        config_from_dict({"backtest": {"n_cutoffs": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'backtest.n_cutoff'"):
        config_from_dict({"backtest": {"n_cutoff": 3}})
    assert config_from_dict({}).backtest.n_cutoffs == 5


# ---------------------------------------------------------------------------- metrics per origin, by hand


@S_VALUES
def test_repeat_last_at_the_first_origin_matches_a_hand_computation(S: int) -> None:
    panel = pattern_panel(S)
    m, _ = run("seasonal_naive", S, 4)
    first = m["by_cutoff"][0]
    # the latest origin over series: series S-1's row 47 + 4 (S-1), its first step 30 min after series 0's
    assert (
        first["cutoff"]
        == (pd.Timestamp("2024-01-01") + (47 + 5 * (S - 1)) * pd.Timedelta("30min")).isoformat()
    )
    assert first["origin"] == 1 and first["steps_to_end"] == 12  # rows after the origin, every series
    errors = [series_units(i)[47 + 4 * i] - series_units(i)[48 + 4 * i : 51 + 4 * i] for i in range(S)]
    scaled = [e / panel.std[i, 0] for i, e in enumerate(errors)]
    rl = first["baselines"]["repeat_last"]
    assert rl["mse_scaled"] == pytest.approx(np.mean(np.concatenate(scaled) ** 2))
    assert rl["mae_scaled"] == pytest.approx(np.mean(np.abs(np.concatenate(scaled))))
    assert rl["mse"] == pytest.approx(np.mean(np.concatenate(errors) ** 2))
    assert rl["mae"] == pytest.approx(np.mean(np.abs(np.concatenate(errors))))
    # in-sample seasonal MAE of series i: AMP_i; MASE: a mean over series
    assert rl["mase"] == pytest.approx(np.mean([np.mean(np.abs(e)) / amp(i) for i, e in enumerate(errors)]))


@S_VALUES
def test_every_origin_by_hand_for_the_model_and_the_baselines(S: int) -> None:
    panel = pattern_panel(S)
    m, _ = run("seasonal_naive", S, 4)
    a = np.array([amp(i) for i in range(S)])
    for k, (entry, o) in enumerate(zip(m["by_cutoff"], [47, 50, 53, 56], strict=True)):
        assert entry["origin"] == k + 1
        last = pd.Timestamp("2024-01-01") + (o + 5 * (S - 1)) * pd.Timedelta("30min")
        assert pd.Timestamp(entry["cutoff"]) == last
        # the model is seasonal naive: every step misses by exactly -AMP_i
        assert entry["mse_scaled"] == pytest.approx(np.mean((a / panel.std[:, 0]) ** 2))
        assert entry["mse"] == pytest.approx(np.mean(a**2))
        assert entry["mae"] == pytest.approx(np.mean(a))
        assert entry["mase"] == pytest.approx(1.0)
        assert entry["baselines"]["seasonal_naive"]["mse"] == pytest.approx(np.mean(a**2))
        smapes, rl_err = [], []
        for i in range(S):
            x = series_units(i)
            oi = o + 4 * i
            actual = x[oi + 1 : oi + 1 + H]
            rl_err.append((x[oi] - actual) / panel.std[i, 0])
            smapes.append(np.mean(200 * np.abs(x[oi] - actual) / (np.abs(actual) + abs(x[oi]))))
        assert entry["baselines"]["repeat_last"]["mse_scaled"] == pytest.approx(
            np.mean(np.concatenate(rl_err) ** 2)
        )
        assert entry["baselines"]["repeat_last"]["smape"] == pytest.approx(np.mean(smapes))


@S_VALUES
def test_pooled_metrics_are_over_every_origin_and_step(S: int) -> None:
    m, _ = run("repeat_last", S, 4)
    per_origin = [c["mse_scaled"] for c in m["by_cutoff"]]
    assert m["mse_scaled"] == pytest.approx(np.mean(per_origin))  # each origin has H steps per series
    assert m["mae_scaled"] == pytest.approx(np.mean([c["mae_scaled"] for c in m["by_cutoff"]]))
    assert m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert m["mse_scaled"] == pytest.approx(m["baselines"]["repeat_last"]["mse_scaled"], rel=1e-6)
    assert m["beats"]["repeat_last"] is False  # a tie is not a win


@S_VALUES
def test_with_every_test_origin_the_backtest_equals_evaluate(S: int) -> None:
    panel = pattern_panel(S)
    m, _ = run("repeat_last", S, len(ALL_ORIGINS))
    ev, _, _ = evaluate_model(repeat_last_model(L, H), panel, PERIOD, levels=(), in_process=True)
    for key in METRIC_KEYS | {"owa"}:
        assert m[key] == pytest.approx(ev[key]), key
        for name in BASELINES:
            assert m["baselines"][name][key] == pytest.approx(ev["baselines"][name][key]), (name, key)


@S_VALUES
def test_backtest_metrics_carry_every_contract_key(S: int) -> None:
    m, _ = run("repeat_last", S, 3)
    assert TOP_KEYS | {"n_cutoffs_requested", "n_series", "owa"} <= set(m)
    assert m["n_cutoffs"] == m["n_cutoffs_requested"] == len(m["by_cutoff"]) == 3
    assert m["n_series"] == S and m["refit"] is False
    assert set(m["baselines"]) == set(BASELINES)
    for entry in m["by_cutoff"]:
        assert METRIC_KEYS | {"cutoff", "origin", "baselines", "owa", "steps_to_end"} <= set(entry)
        for name in BASELINES:
            assert METRIC_KEYS | {"owa"} <= set(entry["baselines"][name])
    json.dumps(m, allow_nan=False)


@S_VALUES
def test_backtest_rows_hold_each_series_origin_and_step_in_data_units(S: int) -> None:
    _, frame = run("seasonal_naive", S, 2)
    id_col = "series" if S == 1 else ID
    assert list(frame.columns) == [id_col, "origin", "cutoff", "timestamp", "step", "actual", *FORECASTERS]
    assert len(frame) == S * 2 * H
    assert frame["step"].tolist() == [1, 2, 3] * 2 * S and frame["origin"].tolist() == ([1] * 3 + [2] * 3) * S
    assert (frame["timestamp"] - frame["cutoff"] == frame["step"] * pd.Timedelta("30min")).all()
    expected = [
        series_units(i)[[*range(48 + 4 * i, 51 + 4 * i), *range(57 + 4 * i, 60 + 4 * i)]] for i in range(S)
    ]
    assert frame["actual"].tolist() == pytest.approx(np.concatenate(expected).tolist())
    misses = np.repeat([amp(i) for i in range(S)], 2 * H)
    assert (frame["actual"] - frame[MODEL_KEY]).tolist() == pytest.approx(misses.tolist())


def test_a_model_built_for_other_windows_is_refused() -> None:
    model = LSTMForecaster(1, L + 1, H, hidden_size=4, num_layers=1)
    with pytest.raises(DataError, match=r"model expects \(input_size, horizon, features\)=\(9, 3, 1\)"):
        backtest_model(model, pattern_panel(1), PERIOD, 2, in_process=True)


# ---------------------------------------------------------------------------- run_backtest: files on disk


@S_VALUES
def test_run_backtest_writes_the_contract_the_rows_and_the_plots(tmp_path: Path, S: int) -> None:
    frame = pattern_frame(S)
    paths = write_repo(
        tmp_path, frame, SPLIT, WINDOW, seasonal_naive_model(L, H),
        evaluate={"seasonal_period": PERIOD}, backtest={"n_cutoffs": 4},
    )  # fmt: skip

    result = run_stage("backtest", tmp_path)

    m = json.loads((paths.metrics / "backtest.json").read_text())
    assert TOP_KEYS <= set(m) and m["n_cutoffs"] == result.n_cutoffs == 4 and result.n_series == S
    first_ts = frame["timestamp"].iloc[0]
    shift = 5 * (S - 1)  # the latest series' origin: 4 rows later, its first step 30 min later
    assert [c["cutoff"] for c in m["by_cutoff"]] == [
        (first_ts + (o + shift) * pd.Timedelta("30min")).isoformat() for o in (47, 50, 53, 56)
    ]
    assert result.first_cutoff == m["by_cutoff"][0]["cutoff"] and result.refit is False
    assert m["mase"] == pytest.approx(1.0, rel=1e-4)  # MASE does not depend on the fitted scaler
    rows = pd.read_parquet(paths.metrics / "backtest.parquet")
    assert len(rows) == S * 4 * H
    assert ("series" in rows.columns) is False and (ID in rows.columns) is (S > 1)  # one series: no id
    s0 = frame[Y].to_numpy()[:60]
    assert rows["actual"].tolist()[: 4 * H] == pytest.approx(
        np.concatenate([s0[o + 1 : o + 1 + H] for o in (47, 50, 53, 56)]).tolist()
    )
    plot_rows = json.loads((paths.plots / "backtest.json").read_text())
    assert [r["origin"] for r in plot_rows] == [1, 2, 3, 4]
    assert set(plot_rows[0]) == {"origin", "cutoff", *FORECASTERS}
    assert (paths.plots / "backtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_backtest_before_the_window_stage_names_the_missing_file(tmp_path: Path) -> None:
    paths = Paths.from_root(tmp_path)
    with pytest.raises(DataError, match=r"values\.npy not found; build the panel \(the window stage\) first"):
        run_backtest(EvaluateConfig(), BacktestConfig(), paths)


def test_run_backtest_on_a_panel_uses_the_origins_the_test_parts_allow(tmp_path: Path) -> None:
    frame = panel_frame([40, 44, 36], period=PERIOD)
    split = {"train": 11, "val": 6, "test": 6}  # 4 stride-1 test windows per series
    paths = write_repo(
        tmp_path, frame, split, WINDOW, evaluate={"seasonal_period": PERIOD}, backtest={"n_cutoffs": 5}
    )

    result = run_stage("backtest", tmp_path)

    m = json.loads((paths.metrics / "backtest.json").read_text())
    assert (
        m["n_cutoffs"] == result.n_cutoffs == 4
        and m["n_cutoffs_requested"] == result.n_cutoffs_requested == 5
    )
    assert {"mse_scaled", "mae_scaled", "baselines", "by_cutoff", "smape", "mase", "owa"} <= set(m)
    assert [c["origin"] for c in m["by_cutoff"]] == [1, 2, 3, 4]
    assert [c["steps_to_end"] for c in m["by_cutoff"]] == [6, 5, 4, 3]  # the last forecast ends on the end
    for c in m["by_cutoff"]:
        assert {"mse_scaled", "smape", "mase", "owa"} <= set(c)
        assert c["mse_scaled"] == pytest.approx(c["baselines"]["repeat_last"]["mse_scaled"], rel=1e-5)
    # the pooled mse_scaled is the mean over origins (every origin has one window per series)
    assert m["mse_scaled"] == pytest.approx(np.mean([c["mse_scaled"] for c in m["by_cutoff"]]), rel=1e-6)
    rows = pd.read_parquet(paths.metrics / "backtest.parquet")
    assert len(rows) == 3 * 4 * H and rows[ID].tolist()[: 4 * H] == ["s0"] * 4 * H
    last = frame[frame[ID] == "s0"]["timestamp"].iloc[-1]
    assert rows["cutoff"].iloc[0] == last - pd.Timedelta(hours=6)


def test_backtest_on_the_m4_protocol_has_one_origin_equal_to_evaluate(tmp_path: Path) -> None:
    frame = panel_frame([24, 30, 20], period=PERIOD)
    split = {"train": 11, "val": 3, "test": 3}
    paths = write_repo(
        tmp_path, frame, split, WINDOW, evaluate={"seasonal_period": PERIOD}, backtest={"n_cutoffs": 5}
    )
    run_stage("evaluate", tmp_path)
    run_stage("backtest", tmp_path)
    ev = json.loads((paths.metrics / "evaluate.json").read_text())
    bt = json.loads((paths.metrics / "backtest.json").read_text())
    assert bt["n_cutoffs"] == 1
    for key in ("mse_scaled", "smape", "mase", "owa"):
        assert bt[key] == pytest.approx(ev[key], rel=1e-9)
