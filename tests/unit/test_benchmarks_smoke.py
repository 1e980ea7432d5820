"""benchmarks/run.py in --quick mode: it runs end to end and writes every contract key.

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
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--ablation",
            "--hourly-proxy",
            "--threads",
            "1",
            "--output",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.timeout(300)
def test_quick_run_writes_every_contract_key_as_a_positive_number(quick_results: dict[str, Any]) -> None:
    missing = CONTRACT_KEYS - quick_results.keys()
    assert not missing, f"results.json lacks {sorted(missing)}"
    bad = {k: quick_results[k] for k in CONTRACT_KEYS if not _positive_number(quick_results[k])}
    assert not bad, f"not positive finite numbers: {bad}"
    assert isinstance(quick_results["windowing_peak_bytes_10m"], int)


@pytest.mark.timeout(300)
def test_speedup_is_the_ratio_of_the_two_loops_medians(quick_results: dict[str, Any]) -> None:
    ratio = quick_results["train_samples_per_second"] / quick_results["plain_loop_samples_per_second"]
    assert quick_results["train_speedup_vs_plain_loop"] == pytest.approx(ratio)
    speed = quick_results["speed"]
    assert speed["runs"]["ours"] and speed["runs"]["plain"]
    assert _positive_number(quick_results["val_mse_ours"])
    assert _positive_number(quick_results["val_mse_plain_loop"])


@pytest.mark.timeout(300)
def test_ablation_reruns_ours_without_the_speed_ups_at_the_pairs_seeds(quick_results: dict[str, Any]) -> None:
    speed = quick_results["speed"]
    ablation = speed["ablation"]
    assert ablation["seeds"] == [r["seed"] for r in speed["runs"]["ours"]]
    assert all(r["fp32_unsharded"] is False for r in speed["runs"]["ours"])
    assert _positive_number(ablation["samples_per_second"])
    assert _positive_number(ablation["val_mse_mean"])
    assert ablation["val_mse_mean_full_loop_same_seeds"] == pytest.approx(speed["ours_val_mse"])


@pytest.mark.timeout(300)
def test_hourly_proxy_runs_the_pipeline_with_the_hidden_benchmarks_params(
    quick_results: dict[str, Any],
) -> None:
    hp = quick_results["hourly_proxy"]
    assert "skipped" not in hp, hp
    assert hp["params"]["split.train"] == 1200 and hp["params"]["evaluate.seasonal_period"] == 24
    assert (hp["input_size"], hp["horizon"], hp["seasonal_period"]) == (48, 24, 24)  # quick sizes
    for key in ("lstm_mse_scaled", "repeat_last_mse_scaled", "seasonal_naive_mse_scaled"):
        assert _positive_number(hp[key]), key
    assert hp["beats_all"] == (
        hp["lstm_mse_scaled"] < hp["repeat_last_mse_scaled"]
        and hp["lstm_mse_scaled"] < hp["seasonal_naive_mse_scaled"]
    )


@pytest.mark.timeout(300)
def test_windowing_10m_points_stays_a_view_of_the_series(quick_results: dict[str, Any]) -> None:
    w = quick_results["windowing"]
    assert w["rows"] == 10_000_000 and w["series_bytes"] == 40_000_000
    assert w["n_windows"] == 10_000_000 - (336 + 48) + 1
    assert w["windows_share_memory"] is True
    assert w["peak_bytes"] < w["series_bytes"]  # views: nothing near the series' size is copied


@pytest.mark.timeout(300)
def test_accuracy_inference_cuda_and_environment_are_recorded(quick_results: dict[str, Any]) -> None:
    by_h = quick_results["accuracy"]["by_horizon"]
    assert set(by_h) == {"24"}  # quick mode: one short horizon
    a = by_h["24"]
    for key in ("lstm_mse_scaled", "repeat_last_mse_scaled", "seasonal_naive_mse_scaled"):
        assert _positive_number(a[key]), key
    assert isinstance(a["beats_all"], bool)
    assert quick_results["inference"]["horizon"] == 24
    assert "cuda" in quick_results
    assert quick_results["cuda"] is None or _positive_number(quick_results["cuda"]["samples_per_second"])
    env = quick_results["environment"]
    for key in ("torch_version", "torch_threads", "cpu_model", "date", "device"):
        assert env[key] not in (None, ""), key
    assert quick_results["quick"] is True


def test_help_names_the_options() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for option in ("--quick", "--output", "--threads", "--budget-s", "--ablation", "--hourly-proxy"):
        assert option in proc.stdout
