"""benchmarks/run.py in --quick mode: it runs end to end and writes every contract key; the
report prints the README table from the results; the statistics helpers say what they claim.

No timing is asserted here: the numbers of a quick run on a shared machine mean nothing;
what is checked is that the script works and that results.json keeps its shape.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.stats import paired_comparison, spread, t_quantiles

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "run.py"
CONTRACT_KEYS = {
    "train_samples_per_second",
    "plain_loop_samples_per_second",
    "train_speedup_vs_plain_loop",
    "peak_rss_mb",
    "predict_one_ms",
    "predict_1000_ms",
    "windowing_peak_bytes_10m",
}


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    # one thread: on a busy 2-core machine two OpenMP threads per process crawl, and this
    # test checks the shape of the output, not the speed
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--ablation", "--hourly-proxy", "--threads", "1"]
        + ["--output", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_quick_run_writes_every_contract_key_as_a_positive_number(quick_results: dict[str, Any]) -> None:
    missing = CONTRACT_KEYS - quick_results.keys()
    assert not missing, f"results.json lacks {sorted(missing)}"
    bad = {k: quick_results[k] for k in CONTRACT_KEYS if not _positive_number(quick_results[k])}
    assert not bad, f"not positive finite numbers: {bad}"
    assert isinstance(quick_results["windowing_peak_bytes_10m"], int)


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_speedup_is_the_ratio_of_the_contract_shapes_medians(quick_results: dict[str, Any]) -> None:
    speed = quick_results["speed"]
    main = speed["shapes"][speed["contract_shape"]]
    ratio = quick_results["train_samples_per_second"] / quick_results["plain_loop_samples_per_second"]
    assert quick_results["train_speedup_vs_plain_loop"] == pytest.approx(ratio)
    assert quick_results["train_samples_per_second"] == main["ours_samples_per_second"]
    assert main["speedup_pairs"]["n"] == len(main["runs"]["ours"]) == len(main["runs"]["plain"])
    assert quick_results["val_mse_ours"] == main["val_mse"]["ours_mean"]


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_speed_runs_at_both_window_shapes_with_the_quick_sizes(quick_results: dict[str, Any]) -> None:
    shapes = quick_results["speed"]["shapes"]
    assert set(shapes) == {"L96_H96", "L336_H48"}
    sizes = {k: (v["setup"]["input_size"], v["setup"]["horizon"]) for k, v in shapes.items()}
    assert sizes == {"L96_H96": (48, 24), "L336_H48": (96, 24)}  # --quick shrinks both
    for name, sp in shapes.items():
        assert {r["shape"] for loop in ("ours", "plain") for r in sp["runs"][loop]} == {name}
        p = sp["speedup_pairs"]
        assert p["min"] <= p["median"] <= p["max"], p


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_both_loops_run_with_the_same_cpu_settings(quick_results: dict[str, Any]) -> None:
    runs = [r for sp in quick_results["speed"]["shapes"].values() for rs in sp["runs"].values() for r in rs]
    settings = {(r["loop"], r["flush_denormal"], r["allocator_tuned"]) for r in runs}
    assert {s[1:] for s in settings} == {s[1:] for s in settings if s[0] == "plain"}, settings
    assert len({s[1:] for s in settings}) == 1, settings


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_ablation_reruns_ours_without_the_speed_ups_at_the_pairs_seeds(quick_results: dict[str, Any]) -> None:
    main = quick_results["speed"]["shapes"]["L96_H96"]
    ablation = main["ablation"]
    assert ablation["seeds"] == [r["seed"] for r in main["runs"]["ours"]]
    assert all(r["fp32_unsharded"] is False for r in main["runs"]["ours"])
    assert _positive_number(ablation["samples_per_second"])
    assert ablation["val_mse_mean_full_loop_same_seeds"] == pytest.approx(main["val_mse"]["ours_mean"])


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_hourly_proxy_is_labelled_a_smoke_check_and_runs_the_hourly_params(
    quick_results: dict[str, Any],
) -> None:
    hp = quick_results["hourly_proxy"]
    assert "skipped" not in hp, hp
    assert "smoke check, not a result" in hp["what"]
    assert hp["params"]["split.train"] == 1200 and hp["params"]["evaluate.seasonal_period"] == 24
    assert (hp["input_size"], hp["horizon"], hp["seasonal_period"]) == (48, 24, 24)  # quick sizes
    assert {"repeat_last", "seasonal_naive"} <= set(hp["beats"])
    assert hp["beats_all"] == all(hp["lstm_mse_scaled"] < hp[f"{b}_mse_scaled"] for b in hp["beats"])


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_windowing_10m_points_is_the_panels_ranges_val_index_and_one_batch(
    quick_results: dict[str, Any],
) -> None:
    w = quick_results["windowing"]
    assert w["rows"] == 10_000_000 and w["series_bytes"] == 40_000_000
    assert quick_results["windowing_peak_bytes_10m"] == w["peak_bytes"]
    _assert_windowing_shape(w)


def _assert_windowing_shape(w: dict[str, Any]) -> None:
    """Windows are per-series ranges, the val index 16 bytes a window, a batch copies 64 windows."""
    L, H = w["input_size"], w["horizon"]
    by_part = w["n_windows_by_part"]
    assert w["n_windows"] == sum(by_part.values()) > 0
    assert w["windows_bytes"] < 10_000  # ranges of every part: nothing per window
    assert w["val_index_bytes"] == 16 * by_part["val"]  # (K, 2) int64
    assert w["batch64_bytes"] == 64 * (L + H) * 4  # float32 inputs and targets of 64 windows
    steps = w["steps"]
    assert w["peak_bytes"] >= max(v["peak_bytes"] for v in steps.values())
    assert w["peak_bytes"] <= sum(v["peak_bytes"] for v in steps.values()) + 10_000  # + bookkeeping
    assert w["peak_bytes"] < w["materialised_bytes_would_be"] / 100


def test_windowing_measures_the_panel_of_a_long_series_step_by_step() -> None:
    from benchmarks.micro import bench_windowing

    w = bench_windowing(rows=100_000)
    assert w["rows"] == 100_000 and w["series_bytes"] == 400_000
    assert set(w["steps"]) == {"windows", "val_window_index", "batch64"}
    train, val, test = (w["n_windows_by_part"][p] for p in ("train", "val", "test"))
    assert train == 70_000 - (336 + 48) + 1  # params.yaml's 0.7 / 0.1 / 0.2, stride 1
    assert (val, test) == (10_000 - 48 + 1, 20_000 - 48 + 1)  # inputs look back into the part before
    _assert_windowing_shape(w)


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_accuracy_inference_load_and_environment_are_recorded(quick_results: dict[str, Any]) -> None:
    by_h = quick_results["accuracy"]["by_horizon"]
    assert set(by_h) == {"24"}  # quick mode: one short horizon
    assert isinstance(by_h["24"]["beats_all"], bool)
    assert "model_path" not in by_h["24"]  # scratch paths are dropped
    assert quick_results["inference"]["horizon"] == 24
    assert quick_results["cuda"] is None or _positive_number(quick_results["cuda"]["samples_per_second"])
    phases = [s["phase"] for s in quick_results["load"]["samples"]]
    assert phases[0] == "start" and phases[-1] == "end" and "speed L336_H48" in phases
    env = quick_results["environment"]
    for key in ("torch_version", "torch_threads", "cpu_model", "date", "device"):
        assert env[key] not in (None, ""), key
    assert quick_results["quick"] is True


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_markdown_table_quotes_the_results_file(
    quick_results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(quick_results))
    assert report.main(["--input", str(path), "--markdown"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| measure | result |")
    assert f"**{quick_results['train_speedup_vs_plain_loop']:.2f}x**" in table
    assert f"{quick_results['windowing_peak_bytes_10m']:,} bytes" in table
    assert "smoke check" in table and "load average" in table
    assert "given to both loops in all" in table


def test_the_plain_loop_cuts_the_very_windows_fit_trains_and_validates_on() -> None:
    import numpy as np

    from benchmarks.bench_data import speed_setup
    from benchmarks.plain_loop import materialise, scaled_series
    from tsforecast.training.train import val_index

    setup = speed_setup(2, quick=True)
    panel, L, H = setup.panel, setup.cfg.window.input_size, setup.cfg.window.horizon
    assert panel.n_series == 1 and panel.id_column is None  # a panel of one, as the window stage builds it
    np.testing.assert_array_equal(setup.train_index, panel.window_index("train"))
    np.testing.assert_array_equal(setup.val_index, val_index(panel, setup.cfg.train.seed)[0])
    series = scaled_series(setup)
    for index in (setup.train_index, setup.val_index):
        X, Y = materialise(series, index[:, 1], L, H)  # (N, L, 1), (N, H)
        x, y = panel.gather(index[:, 0], index[:, 1])
        np.testing.assert_array_equal(X.numpy(), x)
        np.testing.assert_array_equal(Y.numpy(), y)


def test_report_names_a_missing_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--input", str(tmp_path / "nope.json")]) == 1
    assert "nope.json does not exist; run `python benchmarks/run.py` first" in capsys.readouterr().err


def test_spread_gives_median_range_and_quartiles() -> None:
    s = spread([1.4, 2.0, 1.7, 1.5, 1.6])
    assert (s["n"], s["median"], s["min"], s["max"]) == (5, 1.6, 1.4, 2.0)
    assert (s["q1"], s["q3"]) == pytest.approx((1.5, 1.7))


def test_paired_comparison_sees_a_consistent_difference() -> None:
    ref = [0.20, 0.25, 0.30, 0.22, 0.28]
    ours = [r * 1.10 for r in ref]  # 10 % worse at every seed: the pairing removes the seed spread
    c = paired_comparison(ours, ref)
    assert c["ci95"][0] > 0 and c["verdict"].startswith("ours higher (worse)")
    assert c["diff_rel"] == pytest.approx(0.10)


def test_paired_comparison_says_how_small_a_difference_it_could_detect() -> None:
    ref = [0.20, 0.25, 0.30, 0.22, 0.28]
    ours = [0.22, 0.23, 0.31, 0.20, 0.29]  # noise around zero, as large as 10 % of the mean
    c = paired_comparison(ours, ref, detect_rel=0.04)
    t975, t80 = t_quantiles(4)
    assert c["min_detectable_diff"] == pytest.approx((t975 + t80) * c["diff_se"])
    assert c["can_detect_rel"] is False
    assert (
        c["verdict"].startswith("no difference detected") and f"{c['min_detectable_rel']:.0%}" in c["verdict"]
    )


def test_paired_comparison_rejects_unpaired_lists_by_their_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths, got 2 and 3"):
        paired_comparison([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="df=0 must be at least 1"):
        t_quantiles(0)


def test_help_names_the_options() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for option in (
        "--quick",
        "--output",
        "--threads",
        "--budget-s",
        "--ablation",
        "--hourly-proxy",
        "--shapes",
    ):
        assert option in proc.stdout
    assert "smoke check, not a result" in " ".join(proc.stdout.split())  # argparse wraps lines
