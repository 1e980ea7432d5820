"""evaluate: baselines, metrics and the M4 measures against hand computations, the evaluate.json
contract, plots and the stage's files, for one series and for a panel (S in {1, 3}).

The by-hand case (tests/helpers/eval_fixtures.py, ``pattern_frame``): series i is
``LEVEL_i + AMP_i * s_t`` with ``s_t = PATTERN[t % 4] + 0.25 t``, so one season (period 4) back it
is exactly ``AMP_i`` lower: a seasonal-naive forecast misses every step by ``-AMP_i`` in data units,
its in-sample seasonal error is ``AMP_i`` too, and its MASE is exactly 1. Split counts 36/12/12
(anchored at the start for one series, at each series' end for a panel), L=8, H=3: every series
has 10 stride-1 test windows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.eval_fixtures import (
    ID,
    PERIOD,
    Y,
    amp,
    card_extra,
    level,
    make_panel,
    noisy_model,
    panel_frame,
    pattern,
    pattern_frame,
    repeat_last_model,
    run_stage,
    seasonal_naive_model,
    write_repo,
)
from tsforecast.dataset.panel import Panel
from tsforecast.errors import ConfigError, DataError, ModelLoadError
from tsforecast.evaluation import evaluate as evaluate_module
from tsforecast.evaluation import m4
from tsforecast.evaluation.baselines import baseline_forecasts, check_period, naive2_parts
from tsforecast.evaluation.evaluate import evaluate_model, spread
from tsforecast.evaluation.intervals import Calibration
from tsforecast.evaluation.metrics import error_by_step, worst_series, worst_windows
from tsforecast.evaluation.names import BASELINES, FORECASTERS, MODEL_KEY
from tsforecast.evaluation.plots import plot_error_by_step, plot_windows
from tsforecast.evaluation.scoring import Job, chunks_of, concat, score_chunk, score_panel
from tsforecast.evaluation.views import window_views
from tsforecast.training.model import save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

L, H = 8, 3
SPLIT = {"train": 36, "val": 12, "test": 12}
WINDOW = {"input_size": L, "horizon": H}
N_TEST = 10  # stride-1 test windows per series: 12 test rows, inputs looking back into val
# the metrics/evaluate.json contract (/work/shared/DESIGN.md, "Outputs (contract)")
METRIC_KEYS = {"mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows"}
TOP_KEYS = METRIC_KEYS | {"baselines", "beats", "horizon", "input_size", "seasonal_period", "intervals"}
M4_KEYS = {"owa", "n_series", "n_series_mase", "n_seasonal", "beats_owa", "worst_series_by"}
S_VALUES = pytest.mark.parametrize("S", [1, 3])


def pattern_panel(S: int, slope: float = 0.25) -> Panel:
    return make_panel(pattern_frame(S, slope=slope), SPLIT, WINDOW)


def windows_by_hand(panel: Panel, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Series i's test windows by plain slicing, data units: inputs (N, L) and actuals (N, H)."""
    x = level(i) + amp(i) * pattern(int(panel.lengths[i]))
    end = int(panel.lengths[i])
    starts = range(end - 12 - L, end - L - H + 1)
    return np.array([x[s : s + L] for s in starts]), np.array([x[s + L : s + L + H] for s in starts])


def score(
    panel: Panel, model: torch.nn.Module | None = None, **kw: object
) -> tuple[dict, pd.DataFrame, object]:
    net = model if model is not None else repeat_last_model(L, H)
    return evaluate_model(net, panel, PERIOD, levels=(), in_process=True, **kw)  # type: ignore[arg-type]


def smape_hand(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


# ---------------------------------------------------------------------------- baselines


def arange_panel(n: int = 40) -> Panel:
    """One series 1, 2, 3, ... (``n`` rows) with L=8, H=5: its value at row r is r + 1."""
    frame = pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-01", periods=n, freq="h"), Y: np.arange(n) + 1.0}
    )
    return make_panel(frame, {"train": 13, "val": 5, "test": n - 18}, {"input_size": 8, "horizon": 5})


def test_repeat_last_repeats_each_windows_last_value() -> None:
    panel = arange_panel()
    out = baseline_forecasts(panel, np.array([0, 0]), np.array([7, 10]), np.ones((1, 1)), 3)["repeat_last"]
    assert out.tolist() == [[8.0] * 5, [11.0] * 5]


def test_seasonal_naive_reads_one_season_back() -> None:
    panel = arange_panel()
    out = baseline_forecasts(panel, np.array([0, 0]), np.array([7, 10]), np.ones((1, 1)), 3)["seasonal_naive"]
    # step h predicts row o+h from row o+h-3*ceil(h/3): rows 5, 6, 7, then 5, 6 again (values row + 1)
    assert out.tolist() == [[6.0, 7.0, 8.0, 6.0, 7.0], [9.0, 10.0, 11.0, 9.0, 10.0]]


def test_seasonal_naive_with_the_period_equal_to_the_input_window() -> None:
    panel = arange_panel()
    out = baseline_forecasts(panel, np.array([0]), np.array([7]), np.ones((1, 1)), 8)["seasonal_naive"]
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_seasonal_naive_is_naive_when_the_history_is_shorter_than_a_season() -> None:
    out = baseline_forecasts(arange_panel(), np.array([0]), np.array([2]), np.ones((1, 1)), 4)[
        "seasonal_naive"
    ]
    assert out.tolist() == [[3.0] * 5]


def test_seasonal_naive_is_perfect_on_a_periodic_series() -> None:
    panel = pattern_panel(1, slope=0.0)
    idx = panel.window_index("test")
    origin = idx[:, 1] + L - 1
    out = baseline_forecasts(panel, idx[:, 0], origin, np.ones((1, 1)), PERIOD)
    _, y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    np.testing.assert_array_equal(out["seasonal_naive"], y)
    assert not np.array_equal(out["repeat_last"], y)


def test_naive2_of_a_non_seasonal_period_is_naive() -> None:
    seasonal, si = naive2_parts([np.arange(1.0, 30.0)], 1)
    assert seasonal.tolist() == [False] and si.tolist() == [[1.0]]


def test_seasonal_period_longer_than_the_window_is_refused_naming_it_and_the_fix() -> None:
    message = (
        r"evaluate\.seasonal_period=9 exceeds window\.input_size=8; .*raise input_size or lower the period"
    )
    with pytest.raises(ConfigError, match=message):
        check_period(9, 8)
    with pytest.raises(ConfigError, match=message):
        evaluate_model(repeat_last_model(L, H), pattern_panel(1), 9, levels=(), in_process=True)


# ---------------------------------------------------------------------------- metrics by hand


@S_VALUES
def test_every_key_of_the_evaluate_json_contract_is_there_and_plain_json(S: int) -> None:
    panel = pattern_panel(S)
    m, _, _ = evaluate_model(repeat_last_model(L, H), panel, PERIOD, calibration=None, in_process=True)
    assert TOP_KEYS | M4_KEYS | {"pinball_scaled", "interval_method"} <= set(m)
    assert set(m["baselines"]) == set(BASELINES) == {"repeat_last", "seasonal_naive", "naive2"}
    for name in BASELINES:
        assert METRIC_KEYS | {"owa", "intervals", "pinball_scaled"} <= set(m["baselines"][name])
        assert m["baselines"][name]["n_windows"] == m["n_windows"] == S * N_TEST
    assert set(m["beats"]) == set(BASELINES) and all(isinstance(v, bool) for v in m["beats"].values())
    assert (m["horizon"], m["input_size"], m["seasonal_period"], m["n_series"]) == (H, L, PERIOD, S)
    assert set(m["intervals"]["80"]) == {"coverage", "width_scaled"}
    json.loads(json.dumps(m, allow_nan=False))  # plain JSON: no numpy scalars, no NaN


@S_VALUES
def test_every_stride_one_test_window_of_every_series_is_scored(S: int) -> None:
    panel = pattern_panel(S)
    _, table, scores = score(panel)
    assert table["n_windows"].tolist() == [N_TEST] * S
    assert len(scores.window_mae) == S * N_TEST
    job = Job.for_model(repeat_last_model(L, H), PERIOD, forecasts=True)
    got = score_chunk(job, panel).forecasts["actual"]
    expected = np.concatenate([windows_by_hand(panel, i)[1] for i in range(S)])
    np.testing.assert_array_equal(got, expected)


@S_VALUES
def test_baseline_forecasts_match_their_definitions(S: int) -> None:
    panel = pattern_panel(S)
    f = score_chunk(Job.for_model(repeat_last_model(L, H), PERIOD, forecasts=True), panel).forecasts
    x = np.concatenate([windows_by_hand(panel, i)[0] for i in range(S)])
    y = np.concatenate([windows_by_hand(panel, i)[1] for i in range(S)])
    np.testing.assert_array_equal(f["repeat_last"], np.repeat(x[:, -1:], H, axis=1))
    np.testing.assert_array_equal(f["seasonal_naive"], x[:, L - PERIOD : L - PERIOD + H])
    misses = np.repeat([amp(i) for i in range(S)], N_TEST)[:, None]
    np.testing.assert_allclose(f["seasonal_naive"] - y, -np.broadcast_to(misses, y.shape))
    np.testing.assert_allclose(f[MODEL_KEY], f["repeat_last"], rtol=1e-6)


@S_VALUES
def test_seasonal_naive_metrics_by_hand(S: int) -> None:
    panel = pattern_panel(S)
    sn = score(panel)[0]["baselines"]["seasonal_naive"]
    a = np.array([amp(i) for i in range(S)])  # every unit error is -AMP_i, the in-sample scale AMP_i
    assert sn["mse"] == pytest.approx(np.mean(a**2))
    assert sn["mae"] == pytest.approx(np.mean(a))
    assert sn["rmse"] == pytest.approx(math.sqrt(np.mean(a**2)))
    assert sn["mse_scaled"] == pytest.approx(np.mean((a / panel.std[:, 0]) ** 2))
    assert sn["mae_scaled"] == pytest.approx(np.mean(a / panel.std[:, 0]))
    assert sn["mase"] == pytest.approx(1.0)
    smapes = []
    for i in range(S):
        x, y = windows_by_hand(panel, i)
        smapes.append(smape_hand(y, x[:, L - PERIOD : L - PERIOD + H]))
    assert sn["smape"] == pytest.approx(np.mean(smapes))  # a mean over series


@S_VALUES
def test_repeat_last_metrics_by_hand_each_series_on_its_own_scale(S: int) -> None:
    panel = pattern_panel(S)
    m, table, _ = score(panel)
    units, scaled, mases = [], [], []
    for i in range(S):
        x, y = windows_by_hand(panel, i)
        err = x[:, -1:] - y
        units.append(err)
        scaled.append(err / panel.std[i, 0])
        mases.append(np.mean(np.abs(err)) / amp(i))
    eu, es = np.concatenate(units), np.concatenate(scaled)
    rl = m["baselines"]["repeat_last"]
    assert rl["mse_scaled"] == pytest.approx(np.mean(es**2), rel=1e-6)
    assert rl["mae_scaled"] == pytest.approx(np.mean(np.abs(es)), rel=1e-6)
    assert rl["mse"] == pytest.approx(np.mean(eu**2))
    assert rl["rmse"] == pytest.approx(np.sqrt(np.mean(eu**2)))
    assert rl["mase"] == pytest.approx(np.mean(mases))
    np.testing.assert_allclose(table["repeat_last_mse_scaled"], [np.mean(e**2) for e in scaled], rtol=1e-6)


@S_VALUES
def test_m4_measures_match_a_hand_computation(S: int) -> None:
    frame = panel_frame([24, 30, 20][:S], period=PERIOD)
    split = {"train": 11, "val": 3, "test": 3, "anchor": "end"}  # the M4 protocol: test = H, at the end
    panel = make_panel(frame, split, WINDOW)
    metrics, table, _ = score(panel)
    rows = {}
    for sid, g in frame.groupby(ID, sort=False):
        x, y = g[Y].to_numpy()[:-H], g[Y].to_numpy()[-H:]
        scale = np.mean(np.abs(x[PERIOD:] - x[:-PERIOD]))
        naive, snaive = np.repeat(x[-1], H), x[-PERIOD:][np.arange(H) % PERIOD]
        naive2 = m4.naive2_forecast(x, H, PERIOD)[0]
        rows[sid] = {
            "lstm_smape": smape_hand(y, naive),  # the model repeats the last value
            "lstm_mase": np.mean(np.abs(y - naive)) / scale,
            "seasonal_naive_smape": smape_hand(y, snaive),
            "seasonal_naive_mase": np.mean(np.abs(y - snaive)) / scale,
            "naive2_smape": smape_hand(y, naive2),
            "naive2_mase": np.mean(np.abs(y - naive2)) / scale,
        }
    expected = pd.DataFrame.from_dict(rows, orient="index")
    assert list(table[ID]) == ["s0", "s1", "s2"][:S]
    for col in expected:
        np.testing.assert_allclose(table[col].to_numpy(), expected[col].to_numpy(), rtol=1e-5, err_msg=col)
    mean = expected.mean()
    owa = 0.5 * (mean.lstm_smape / mean.naive2_smape + mean.lstm_mase / mean.naive2_mase)
    assert metrics["smape"] == pytest.approx(mean.lstm_smape, rel=1e-5)
    assert metrics["mase"] == pytest.approx(mean.lstm_mase, rel=1e-5)
    assert metrics["owa"] == pytest.approx(owa, rel=1e-5)
    assert metrics["baselines"]["naive2"]["owa"] == pytest.approx(1.0)
    assert metrics["baselines"]["repeat_last"]["owa"] == pytest.approx(owa, rel=1e-5)  # the same forecasts
    assert metrics["n_series"] == S and metrics["n_windows"] == S


def test_the_m4_protocol_agrees_with_m4_panel_scores_on_many_seasonal_series() -> None:
    m, h = 24, 12
    frame = panel_frame([200 + 7 * i for i in range(25)], period=m, seed=3)
    panel = make_panel(frame, {"train": 60, "val": h, "test": h}, {"input_size": 48, "horizon": h})
    metrics, table, _ = evaluate_model(repeat_last_model(48, h), panel, m, levels=(), in_process=True)
    insample = panel.histories(before="test")
    actuals = np.stack([panel.series(i)[-h:, 0] for i in range(panel.n_series)])
    naive = np.repeat(np.array([x[-1] for x in insample])[:, None], h, axis=1)
    agg, per = m4.panel_scores(actuals, naive, insample, m)
    assert agg["n_seasonal"] > 0
    for key in ("smape", "mase", "owa"):
        assert metrics[key] == pytest.approx(agg[key], rel=1e-5)
        for b in ("naive2", "seasonal_naive"):
            assert metrics["baselines"][b][key] == pytest.approx(agg["baselines"][b][key], rel=1e-5)
    np.testing.assert_array_equal(table["seasonal"].to_numpy(), per["seasonal"].to_numpy())
    np.testing.assert_allclose(table["naive2_smape"], per["smape_naive2"], rtol=1e-5)


def test_many_windows_per_series_are_averaged_per_series() -> None:
    frame = panel_frame([60, 80], period=PERIOD)
    panel = make_panel(frame, {"train": 0.6, "val": 0.2, "test": 0.2, "lookback": True}, WINDOW)
    net = noisy_model(L, H)
    _, table, _ = score(panel, net)
    assert table["n_windows"].tolist() == panel.windows("test").count.tolist() == [10, 14]
    idx = panel.window_index("test")
    mine = idx[idx[:, 0] == 1]  # series 1 by hand: its own windows only, on its own scale
    x, y = panel.gather(mine[:, 0], mine[:, 1])
    with torch.no_grad():
        p = net(torch.from_numpy(x)).numpy()
    assert table["lstm_mse_scaled"][1] == pytest.approx(float(np.mean((p - y) ** 2)), rel=1e-5)


@S_VALUES
def test_a_series_without_an_in_sample_seasonal_error_has_no_mase(S: int) -> None:
    frame = pattern_frame(S)
    flat = frame[ID] == "s0" if S > 1 else slice(None)
    frame.loc[flat, Y] = 10.0 + 2.0 * np.tile([0.0, 1.0, -1.0, 0.5], 15)  # s0: periodic, no trend
    m, table, _ = score(make_panel(frame, SPLIT, WINDOW))
    assert table["mase_scale"][0] == 0.0 and np.isinf(table["lstm_mase"][0])
    assert m["n_series_mase"] == S - 1
    if S == 1:
        assert math.isnan(m["mase"]) and m["mae"] > 0
    else:  # the mean over the series that have a scale
        assert m["mase"] == pytest.approx(table["lstm_mase"][1:].mean())


# ---------------------------------------------------------------------------- the model against the baselines


@S_VALUES
def test_a_model_that_repeats_the_last_value_ties_that_baseline_and_does_not_beat_it(S: int) -> None:
    m, _, _ = score(pattern_panel(S))
    rl = m["baselines"]["repeat_last"]
    for key in ("mse_scaled", "mae_scaled", "mse", "mae", "smape", "mase"):
        assert m[key] == pytest.approx(rl[key], rel=1e-6), key
    assert m["beats"]["repeat_last"] is False  # a tie is not a win
    assert m["beats"]["seasonal_naive"] is (m["mse_scaled"] < m["baselines"]["seasonal_naive"]["mse_scaled"])


@S_VALUES
def test_a_model_equal_to_seasonal_naive_beats_repeat_last_only(S: int) -> None:
    m, _, _ = score(pattern_panel(S), seasonal_naive_model(L, H))
    assert m["mse_scaled"] == pytest.approx(m["baselines"]["seasonal_naive"]["mse_scaled"], rel=1e-5)
    assert m["mase"] == pytest.approx(1.0, rel=1e-5)
    assert m["beats"]["repeat_last"] is True and m["beats"]["seasonal_naive"] is False


@S_VALUES
def test_a_perfect_model_scores_zero_and_beats_every_baseline(S: int) -> None:
    m, _, _ = score(pattern_panel(S), seasonal_naive_model(L, H, trend=True))
    for key in ("mse_scaled", "mae_scaled", "mse", "mae", "rmse", "mase", "smape"):
        assert m[key] == pytest.approx(0.0, abs=1e-4), key
    assert m["beats"] == {b: True for b in BASELINES}


@S_VALUES
def test_error_by_step_has_one_row_per_step_averaged_over_series(S: int) -> None:
    panel = pattern_panel(S)
    m, table, scores = score(panel, seasonal_naive_model(L, H))
    rows = error_by_step(scores)
    assert [r["step"] for r in rows] == [1, 2, 3] and set(rows[0]) == {"step", *FORECASTERS}
    per_series = (
        np.array([amp(i) for i in range(S)]) / panel.std[:, 0]
    ) ** 2  # seasonal naive misses by AMP_i
    for r in rows:
        assert r["seasonal_naive"] == pytest.approx(per_series.mean())
    for name in FORECASTERS:  # equal windows per series and per step: the mean is the pooled value
        total = m if name == MODEL_KEY else m["baselines"][name]
        assert np.mean([r[name] for r in rows]) == pytest.approx(total["mse_scaled"], rel=1e-5)
        assert np.mean([r[name] for r in rows]) == pytest.approx(table[f"{name}_mse_scaled"].mean(), rel=1e-6)


@S_VALUES
def test_the_val_part_is_scored_on_the_val_windows(S: int) -> None:
    panel = pattern_panel(S)
    scores = score_chunk(Job.for_model(repeat_last_model(L, H), PERIOD, part="val"), panel)
    assert scores.n_windows.tolist() == panel.windows("val").count.tolist() == [N_TEST] * S


@S_VALUES
def test_a_model_built_for_other_windows_is_refused_naming_both_shapes(S: int) -> None:
    with pytest.raises(DataError, match=r"model expects \(input_size, horizon, features\)=\(9, 3, 1\) "
                                        r"but the data gives \(8, 3, 1\); retrain or re-window"):  # fmt: skip
        score(pattern_panel(S), repeat_last_model(L + 1, H))


# ---------------------------------------------------------------------------- intervals


@S_VALUES
def test_without_a_calibration_the_model_is_calibrated_on_the_val_windows_as_the_baselines_are(
    S: int,
) -> None:
    frame = panel_frame([60, 64, 68][:S], period=PERIOD)  # noise: no actual lies on a bound
    panel = make_panel(frame.drop(columns=ID) if S == 1 else frame, SPLIT, WINDOW)
    m, table, _ = evaluate_model(repeat_last_model(L, H), panel, PERIOD, calibration=None, in_process=True)
    for key, value in m["baselines"]["repeat_last"]["intervals"]["80"].items():
        assert m["intervals"]["80"][key] == pytest.approx(value), key
    assert m["pinball_scaled"] == pytest.approx(m["baselines"]["repeat_last"]["pinball_scaled"])
    assert table["coverage_80"].mean() == pytest.approx(m["intervals"]["80"]["coverage"])  # equal windows


@S_VALUES
def test_the_model_s_own_calibration_is_what_is_scored(S: int) -> None:
    panel = pattern_panel(S)
    own = Calibration.from_extra(card_extra(panel))  # residuals N(0, 0.5): wide intervals
    m, _, _ = evaluate_model(repeat_last_model(L, H), panel, PERIOD, calibration=own, in_process=True)
    lo, hi = own.bounds(np.zeros((1, H)), 80.0)
    assert m["intervals"]["80"]["width_scaled"] == pytest.approx(float(np.mean(hi - lo)))
    assert m["intervals"] != m["baselines"]["repeat_last"]["intervals"]
    assert m["interval_method"] == own.method


# ---------------------------------------------------------------------------- chunks, Dask, plots' picks


def test_dask_map_and_any_chunking_give_the_in_process_numbers() -> None:
    from distributed import LocalCluster

    panel = make_panel(panel_frame([24, 30, 20], period=PERIOD), {"train": 11, "val": 3, "test": 3}, WINDOW)
    cal = Calibration.from_extra(card_extra(panel))
    job = Job.for_model(noisy_model(L, H), PERIOD, levels=(80.0,), calibrations={MODEL_KEY: cal})
    whole = score_chunk(job, panel)
    small = concat([score_chunk(job, c) for c in chunks_of(panel, windows_per_chunk=1)])
    assert len(chunks_of(panel, windows_per_chunk=1)) == 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = score_panel(job, panel, cluster.scheduler_address)
    for got in (small, on_dask):
        for key, value in whole.sums.items():
            np.testing.assert_allclose(got.sums[key], value, rtol=1e-6, err_msg=key)
        np.testing.assert_array_equal(got.n_windows, whole.n_windows)
        np.testing.assert_allclose(got.covered[MODEL_KEY], whole.covered[MODEL_KEY])


def test_worst_series_are_those_with_the_highest_mase() -> None:
    table = pd.DataFrame({"lstm_mase": [0.5, np.nan, 3.0, 1.2], "lstm_smape": [1.0, 99.0, 2.0, 3.0]})
    assert worst_series(table, 2) == [2, 3]
    no_mase = pd.DataFrame({"lstm_mase": [np.nan, np.nan], "lstm_smape": [1.0, 5.0]})
    assert worst_series(no_mase, 1) == [1]


def test_worst_windows_have_the_highest_mase_and_come_in_window_order() -> None:
    mae = np.array([0.1, 3.0, 0.2, 2.0, 0.0])
    assert worst_windows(mae, np.zeros(5, dtype=int), np.array([1.0]), 2) == [1, 3]  # one series: by MAE
    # two series: window 0's MAE is small but its series' scale smaller still
    assert worst_windows(np.array([0.5, 3.0, 2.0]), np.array([0, 1, 1]), np.array([0.1, 10.0]), 1) == [0]
    assert worst_windows(np.array([0.5, 3.0]), np.array([0, 0]), np.array([0.0]), 1) == [1]  # no scale: MAE


def test_the_spread_of_plotted_windows_is_even_from_the_first_to_the_last() -> None:
    assert spread(10, 3) == [0, 4, 9]
    assert spread(10, 50) == list(range(10))
    assert spread(10, 0) == [0]


def _is_png(data: bytes) -> bool:
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


@S_VALUES
def test_plots_render_windows_with_bands_and_the_error_by_step(S: int) -> None:
    panel = pattern_panel(S)
    cal = Calibration.from_extra(card_extra(panel))
    last = (S - 1, int(panel.window_index("test")[-1, 1]))
    first, view = window_views(repeat_last_model(L, H), panel, [(0, 40), last], PERIOD, cal, 80)
    assert first.sid == panel.ids[0] and first.actual.tolist() == windows_by_hand(panel, 0)[1][0].tolist()
    assert view.band is not None and (view.band[0] <= view.forecasts[MODEL_KEY]).all()
    assert view.title.startswith(f"{panel.ids[S - 1]} from ")
    assert len(view.future_t) == H and view.history_t[-1] < view.future_t[0]
    assert _is_png(plot_windows([view, view, view], "value", "three windows"))
    _, _, scores = score(panel)
    assert _is_png(plot_error_by_step(error_by_step(scores), S, S * N_TEST))


# ---------------------------------------------------------------------------- the stage, on disk


@S_VALUES
def test_run_evaluate_writes_the_contract_by_series_and_plots(tmp_path: Path, S: int) -> None:
    frame = pattern_frame(S)
    paths = write_repo(
        tmp_path, frame, SPLIT, WINDOW, evaluate={"seasonal_period": PERIOD, "plot_windows": 2}
    )

    result = run_stage("evaluate", tmp_path)

    m = json.loads((paths.metrics / "evaluate.json").read_text())
    assert TOP_KEYS | M4_KEYS | {"pinball_scaled", "interval_method", "worst_series"} <= set(m)
    assert result.n_series == m["n_series"] == S and result.n_windows == m["n_windows"] == S * N_TEST
    assert result.mse_scaled == pytest.approx(m["mse_scaled"], abs=1e-6)
    assert result.owa == pytest.approx(m["owa"], abs=1e-4)
    assert result.beats_baselines is False  # the model is repeat_last
    table = pd.read_parquet(paths.metrics / "by_series.parquet")
    id_col = "series" if S == 1 else ID  # one series: the implicit id, holding the target's name
    assert table.columns[0] == id_col and table[id_col].tolist() == (
        ["value"] if S == 1 else ["s0", "s1", "s2"]
    )
    for f in FORECASTERS:
        assert {f"{f}_smape", f"{f}_mase", f"{f}_mse_scaled", f"{f}_mae_scaled"} <= set(table.columns)
    assert {"lstm_owa", "coverage_80", "width_scaled_80", "mase_scale", "seasonal", "n_windows"} <= set(
        table.columns
    )
    if S == 1:
        assert (
            table["lstm_mse_scaled"][0] == m["mse_scaled"]
            and table["coverage_80"][0] == m["intervals"]["80"]["coverage"]
        )
    assert m["worst_series"] == [
        str(s) for s in table.sort_values("lstm_mase", ascending=False)[id_col][: min(S, 2)]
    ]
    for png in ("worst_series.png", "forecast.png", "error_by_step.png"):
        assert _is_png((paths.plots / png).read_bytes()), png
    steps = json.loads((paths.plots / "error_by_step.json").read_text())
    assert [r["step"] for r in steps] == [1, 2, 3] and set(steps[0]) == {"step", *FORECASTERS}
    rows = json.loads((paths.plots / "forecast.json").read_text())
    assert len(rows) == H and {"timestamp", "step", "actual", "forecast", "seasonal_naive"} <= set(rows[0])
    assert ("series" in rows[0]) is (S > 1)  # one series: no id key, as before
    first = frame if S == 1 else frame[frame[ID] == "s0"]
    target = len(first) - 12  # the first test window forecasts the first test rows
    assert [r["actual"] for r in rows] == pytest.approx(first[Y].iloc[target : target + H].tolist())
    assert rows[0]["timestamp"] == str(first["timestamp"].iloc[target])
    assert isinstance(rows[0]["forecast"], float)


@S_VALUES
def test_a_failed_evaluate_leaves_the_previous_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, S: int
) -> None:
    paths = write_repo(tmp_path, pattern_frame(S), SPLIT, WINDOW, evaluate={"seasonal_period": PERIOD})
    run_stage("evaluate", tmp_path)
    outputs = [*paths.metrics.iterdir(), *paths.plots.iterdir()]
    before = {p: p.read_bytes() for p in outputs}

    def broken(*args: object, **kw: object) -> bytes:
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(evaluate_module, "plot_error_by_step", broken)
    panel = make_panel(pattern_frame(S), SPLIT, WINDOW)
    save_model(noisy_model(L, H), paths.models / "model.pt", card_extra(panel))
    with pytest.raises(RuntimeError, match="plotting failed"):
        run_stage("evaluate", tmp_path)
    after = [*paths.metrics.iterdir(), *paths.plots.iterdir()]
    assert sorted(after) == sorted(outputs)  # no temp file left behind
    assert all(p.read_bytes() == data for p, data in before.items())


def test_a_model_file_without_a_model_card_is_refused_naming_the_fix(tmp_path: Path) -> None:
    paths = write_repo(tmp_path, pattern_frame(1), SPLIT, WINDOW, evaluate={"seasonal_period": PERIOD})
    save_model(repeat_last_model(L, H), paths.models / "model.pt")  # no metadata
    with pytest.raises(ModelLoadError, match=r"model\.pt: its model card is missing or damaged .*retrain"):
        run_stage("evaluate", tmp_path)


def test_a_model_card_for_other_data_is_refused_naming_the_key(tmp_path: Path) -> None:
    paths = write_repo(tmp_path, pattern_frame(3), SPLIT, WINDOW, evaluate={"seasonal_period": PERIOD})
    extra = card_extra(make_panel(pattern_frame(3), SPLIT, WINDOW))
    save_model(repeat_last_model(L, H), paths.models / "model.pt", {**extra, "id_column": None})
    with pytest.raises(
        DataError, match=r"data\.id_column is 'unique_id' but .*model\.pt was trained with None"
    ):
        run_stage("evaluate", tmp_path)
