"""Evaluate and backtest of a global model on a panel: M4 measures per series and over the panel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.panel_eval_fixtures import (
    ID,
    make_panel,
    noisy_model,
    panel_extra,
    panel_frame,
    repeat_last_model,
    write_panel_repo,
)
from tsforecast import stages
from tsforecast.config import SplitConfig, WindowConfig, load_config
from tsforecast.evaluation import m4, panel_evaluate
from tsforecast.evaluation.panel_evaluate import evaluate_panel, worst_series
from tsforecast.evaluation.scoring import Job, chunks_of, concat, score_chunk, score_panel
from tsforecast.paths import Paths

pytestmark = pytest.mark.usefixtures("one_torch_thread")

L, H, M = 8, 3, 4
SPLIT = {"train": 11, "val": 3, "test": 3}  # counts anchored at the end, test = H: the M4 protocol
WINDOW = {"input_size": L, "horizon": H}
CONTRACT = {
    "mse_scaled",
    "mae_scaled",
    "mse",
    "mae",
    "rmse",
    "mase",
    "smape",
    "n_windows",
    "baselines",
    "intervals",
}


def smape_hand(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mase_hand(y: np.ndarray, f: np.ndarray, x: np.ndarray, m: int) -> float:
    return float(np.mean(np.abs(y - f)) / np.mean(np.abs(x[m:] - x[:-m])))


@pytest.fixture
def tiny() -> tuple[pd.DataFrame, object]:
    frame = panel_frame([24, 30, 20], period=M)
    return frame, make_panel(frame, SplitConfig(**SPLIT), WindowConfig(**WINDOW))


def test_m4_measures_match_a_hand_computation_on_three_series(tiny) -> None:
    frame, panel = tiny
    metrics, table, _ = evaluate_panel(repeat_last_model(L, H), panel_extra(panel), panel, M, in_process=True)

    rows = {}
    for sid, g in frame.groupby(ID, sort=False):
        x, y = g["value"].to_numpy()[:-H], g["value"].to_numpy()[-H:]
        naive = np.repeat(x[-1], H)
        snaive = x[-M:][np.arange(H) % M]
        naive2 = m4.naive2_forecast(x, H, M)[0]
        rows[sid] = {
            "lstm_smape": smape_hand(y, naive),  # the model repeats the last value
            "lstm_mase": mase_hand(y, naive, x, M),
            "seasonal_naive_smape": smape_hand(y, snaive),
            "seasonal_naive_mase": mase_hand(y, snaive, x, M),
            "naive2_smape": smape_hand(y, naive2),
            "naive2_mase": mase_hand(y, naive2, x, M),
        }
    expected = pd.DataFrame.from_dict(rows, orient="index")
    assert list(table[ID]) == ["s0", "s1", "s2"]
    for col in expected:
        np.testing.assert_allclose(table[col].to_numpy(), expected[col].to_numpy(), rtol=1e-5, err_msg=col)
    mean = expected.mean()
    owa = 0.5 * (mean.lstm_smape / mean.naive2_smape + mean.lstm_mase / mean.naive2_mase)
    assert metrics["smape"] == pytest.approx(mean.lstm_smape, rel=1e-5)
    assert metrics["mase"] == pytest.approx(mean.lstm_mase, rel=1e-5)
    assert metrics["owa"] == pytest.approx(owa, rel=1e-5)
    assert metrics["baselines"]["naive2"]["owa"] == pytest.approx(1.0)
    assert metrics["baselines"]["repeat_last"]["owa"] == pytest.approx(owa, rel=1e-5)  # the same forecasts
    assert metrics["n_series"] == 3 and metrics["n_windows"] == 3


def test_scaled_and_unit_errors_are_pooled_over_series_each_on_its_own_scale(tiny) -> None:
    frame, panel = tiny
    metrics, table, _ = evaluate_panel(repeat_last_model(L, H), panel_extra(panel), panel, M, in_process=True)
    err_units, err_scaled = [], []
    for i, (_, g) in enumerate(frame.groupby(ID, sort=False)):
        v = g["value"].to_numpy()
        e = v[-H - 1] - v[-H:]
        err_units.append(e)
        err_scaled.append(e / panel.std[i, 0])
    eu, es = np.concatenate(err_units), np.concatenate(err_scaled)
    assert metrics["mse_scaled"] == pytest.approx(np.mean(es**2), rel=1e-5)
    assert metrics["mae_scaled"] == pytest.approx(np.mean(np.abs(es)), rel=1e-5)
    assert metrics["mse"] == pytest.approx(np.mean(eu**2), rel=1e-5)
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean(eu**2)), rel=1e-5)
    np.testing.assert_allclose(table["lstm_mse_scaled"], [np.mean(e**2) for e in err_scaled], rtol=1e-5)
    assert metrics["mse_scaled"] == pytest.approx(metrics["baselines"]["repeat_last"]["mse_scaled"], rel=1e-5)


def test_the_m4_protocol_agrees_with_m4_panel_scores_on_many_seasonal_series() -> None:
    m, h = 24, 12
    frame = panel_frame([200 + 7 * i for i in range(25)], period=m, seed=3)
    panel = make_panel(frame, SplitConfig(train=60, val=h, test=h), WindowConfig(input_size=48, horizon=h))
    metrics, table, _ = evaluate_panel(repeat_last_model(48, h), {}, panel, m, levels=(), in_process=True)
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
    frame = panel_frame([60, 80], period=M)
    panel = make_panel(
        frame, SplitConfig(train=0.6, val=0.2, test=0.2, lookback=True), WindowConfig(**WINDOW)
    )
    _, table, scores = evaluate_panel(noisy_model(L, H), {}, panel, M, levels=(), in_process=True)
    counts = panel.windows("test").count
    assert table["n_windows"].tolist() == counts.tolist() == [10, 14]
    # series 1 by hand: its own windows only, each series on its own scale
    net = noisy_model(L, H)
    idx = panel.window_index("test")
    mine = idx[idx[:, 0] == 1]
    x, y = panel.gather(mine[:, 0], mine[:, 1])
    import torch

    with torch.no_grad():
        p = net(torch.from_numpy(x)).numpy()
    assert table["lstm_mse_scaled"][1] == pytest.approx(float(np.mean((p - y) ** 2)), rel=1e-5)


def test_dask_map_and_any_chunking_give_the_in_process_numbers(tiny) -> None:
    from distributed import LocalCluster

    _, panel = tiny
    job = Job.for_model(noisy_model(L, H), M, levels=(80.0,), quantiles=None)
    whole = score_chunk(job, panel)
    small = concat([score_chunk(job, c) for c in chunks_of(panel, windows_per_chunk=1)])
    assert len(chunks_of(panel, windows_per_chunk=1)) == 3
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_dask = score_panel(job, panel, cluster.scheduler_address)
    for got in (small, on_dask):
        for key, value in whole.sums.items():
            np.testing.assert_allclose(got.sums[key], value, rtol=1e-6, err_msg=key)
        np.testing.assert_array_equal(got.n_windows, whole.n_windows)


def test_the_model_must_fit_the_panel_s_windows(tiny) -> None:
    _, panel = tiny
    with pytest.raises(
        Exception, match=r"model expects \(input_size, horizon, features\)=\(9, 3, 1\).*\(8, 3, 1\)"
    ):
        evaluate_panel(repeat_last_model(L + 1, H), {}, panel, M, in_process=True)


def test_worst_series_are_those_with_the_highest_mase() -> None:
    table = pd.DataFrame({"lstm_mase": [0.5, np.nan, 3.0, 1.2], "lstm_smape": [1.0, 99.0, 2.0, 3.0]})
    assert worst_series(table, 2) == [2, 3]
    no_mase = pd.DataFrame({"lstm_mase": [np.nan, np.nan], "lstm_smape": [1.0, 5.0]})
    assert worst_series(no_mase, 1) == [1]


# ---------------------------------------------------------------------------- the stage, on disk


def run_stage(name: str, root: Path) -> object:
    return stages.run_stage(name, load_config(root / "params.yaml"), Paths.from_root(root))


def test_run_evaluate_on_a_panel_writes_the_contract_by_series_and_plots(tmp_path: Path) -> None:
    frame = panel_frame([24, 30, 20, 26, 28], period=M)
    paths = write_panel_repo(
        tmp_path, frame, SPLIT, WINDOW, evaluate={"seasonal_period": M, "plot_windows": 2}
    )

    result = run_stage("evaluate", tmp_path)

    m = json.loads((paths.metrics / "evaluate.json").read_text())
    assert CONTRACT | {"owa", "n_series"} <= set(m)
    assert set(m["baselines"]) == {"repeat_last", "seasonal_naive", "naive2"}
    for b in m["baselines"].values():
        assert {"mse_scaled", "mae_scaled", "smape", "mase", "owa"} <= set(b)
    assert set(m["intervals"]["80"]) == {"coverage", "width_scaled"}
    assert result.n_series == m["n_series"] == 5 and result.owa == pytest.approx(m["owa"], abs=1e-4)
    table = pd.read_parquet(paths.metrics / "by_series.parquet")
    assert table[ID].tolist() == ["s0", "s1", "s2", "s3", "s4"]
    for f in ("lstm", "naive2", "seasonal_naive", "repeat_last"):
        assert {f"{f}_smape", f"{f}_mase", f"{f}_mse_scaled"} <= set(table.columns)
    assert {"lstm_owa", "coverage_80", "width_scaled_80", "mase_scale", "seasonal"} <= set(table.columns)
    assert m["worst_series"] == [str(s) for s in table.sort_values("lstm_mase", ascending=False)[ID][:2]]
    for png in ("worst_series.png", "forecast.png", "error_by_step.png"):
        assert (paths.plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps = json.loads((paths.plots / "error_by_step.json").read_text())
    assert [r["step"] for r in steps] == [1, 2, 3]
    first = json.loads((paths.plots / "forecast.json").read_text())
    assert len(first) == H and {r["series"] for r in first} == {"s0"}
    assert first[0]["actual"] == pytest.approx(frame[frame[ID] == "s0"]["value"].iloc[-H])


def test_error_by_step_averages_each_series_once(tiny) -> None:
    _, panel = tiny
    _, table, scores = evaluate_panel(noisy_model(L, H), {}, panel, M, levels=(), in_process=True)
    rows = panel_evaluate.error_by_step(scores)
    assert np.mean([r["lstm"] for r in rows]) == pytest.approx(table["lstm_mse_scaled"].mean(), rel=1e-6)


def test_a_failed_evaluate_leaves_the_previous_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = panel_frame([24, 30, 20], period=M)
    paths = write_panel_repo(tmp_path, frame, SPLIT, WINDOW, evaluate={"seasonal_period": M})
    run_stage("evaluate", tmp_path)
    outputs = [*paths.metrics.iterdir(), *paths.plots.iterdir()]
    before = {p: p.read_bytes() for p in outputs}

    def broken(*args: object, **kw: object) -> bytes:
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(panel_evaluate, "plot_error_by_step", broken)
    from tsforecast.training.model import save_model

    save_model(
        noisy_model(L, H),
        paths.models / "model.pt",
        panel_extra(make_panel(frame, SplitConfig(**SPLIT), WindowConfig(**WINDOW))),
    )
    with pytest.raises(RuntimeError, match="plotting failed"):
        run_stage("evaluate", tmp_path)
    after = [*paths.metrics.iterdir(), *paths.plots.iterdir()]
    assert sorted(after) == sorted(outputs)  # no temp file left behind
    assert all(p.read_bytes() == data for p, data in before.items())


def test_run_backtest_on_a_panel_uses_the_origins_the_test_parts_allow(tmp_path: Path) -> None:
    frame = panel_frame([40, 44, 36], period=M)
    split = {"train": 11, "val": 6, "test": 6}  # 4 stride-1 test windows per series
    paths = write_panel_repo(
        tmp_path, frame, split, WINDOW, evaluate={"seasonal_period": M}, backtest={"n_cutoffs": 5}
    )

    result = run_stage("backtest", tmp_path)

    m = json.loads((paths.metrics / "backtest.json").read_text())
    assert m["n_cutoffs"] == result.n_cutoffs == 4 and m["n_cutoffs_requested"] == 5
    assert {"mse_scaled", "mae_scaled", "baselines", "by_cutoff", "smape", "mase", "owa"} <= set(m)
    assert [c["origin"] for c in m["by_cutoff"]] == [1, 2, 3, 4]
    assert [c["cutoff"] for c in m["by_cutoff"]] == [
        6,
        5,
        4,
        3,
    ]  # steps before each series' end: the last forecast ends on it
    for c in m["by_cutoff"]:
        assert {"mse_scaled", "smape", "mase", "owa"} <= set(c)
        assert c["mse_scaled"] == pytest.approx(c["baselines"]["repeat_last"]["mse_scaled"], rel=1e-5)
    # the pooled mse_scaled is the mean over origins (every origin has one window per series)
    assert m["mse_scaled"] == pytest.approx(np.mean([c["mse_scaled"] for c in m["by_cutoff"]]), rel=1e-6)
    rows = pd.read_parquet(paths.metrics / "backtest.parquet")
    assert len(rows) == 3 * 4 and rows[ID].tolist()[:4] == ["s0"] * 4
    last = frame[frame[ID] == "s0"]["timestamp"].iloc[-1]
    assert rows["cutoff"].iloc[0] == last - pd.Timedelta(hours=6)
    assert (paths.plots / "backtest.png").is_file()
    assert [r["origin"] for r in json.loads((paths.plots / "backtest.json").read_text())] == [1, 2, 3, 4]


def test_backtest_on_the_m4_protocol_has_one_origin_equal_to_evaluate(tmp_path: Path) -> None:
    frame = panel_frame([24, 30, 20], period=M)
    paths = write_panel_repo(
        tmp_path, frame, SPLIT, WINDOW, evaluate={"seasonal_period": M}, backtest={"n_cutoffs": 5}
    )
    run_stage("evaluate", tmp_path)
    run_stage("backtest", tmp_path)
    ev = json.loads((paths.metrics / "evaluate.json").read_text())
    bt = json.loads((paths.metrics / "backtest.json").read_text())
    assert bt["n_cutoffs"] == 1
    for key in ("mse_scaled", "smape", "mase", "owa"):
        assert bt[key] == pytest.approx(ev[key], rel=1e-9)
