"""Benchmarks: training speed against a plain PyTorch loop, accuracy against the baselines,
inference latency and windowing memory. Prints a table and writes benchmarks/results.json.

    python benchmarks/run.py            # the full run, about 10-15 minutes on 2 shared cores
    python benchmarks/run.py --quick    # tiny sizes, for the smoke test
    python benchmarks/run.py --help

The steps live beside this file: ``speed.py`` (ours vs the plain loop), ``accuracy.py``
(the pipeline against the baselines, the hourly smoke check), ``micro.py`` (inference
latency, windowing memory, peak RSS), ``report.py`` (the table, the JSON, the README table),
``workers.py`` (what runs in each fresh subprocess) and ``harness.py`` (logging, load
sampling, subprocesses).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks.*` from any cwd

from benchmarks.bench_data import CONTRACT_SHAPE, SPEED_SHAPES, speed_shape  # noqa: E402
from benchmarks.harness import T0, environment, load_summary, log, run_worker, sample_load  # noqa: E402
from benchmarks.workers import ACCURACY_L, ACCURACY_PERIOD, WORKERS, worker_main  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
CONTRACT_KEYS = (
    "train_samples_per_second",
    "plain_loop_samples_per_second",
    "train_speedup_vs_plain_loop",
    "peak_rss_mb",
    "predict_one_ms",
    "predict_1000_ms",
    "windowing_peak_bytes_10m",
)
# the share of --budget-s after which each speed step stops starting new pairs
SPEED_DEADLINES = {"L96_H96": 0.22, "L336_H48": 0.50}
ABLATION_DEADLINE = 0.58


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line (the hidden --worker flags start one subprocess worker)."""
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=(
            "Benchmark tsforecast: training speed of tsforecast.training.train.fit against a plain PyTorch "
            "loop (same model, data, steps and CPU settings; seed pairs in alternating fresh "
            "subprocesses; medians with the per-pair spread) at L=H=96 and at params.yaml's "
            "L=336/H=48, test accuracy against repeat-last and seasonal-naive at several horizons "
            "(the full pipeline with params.yaml), inference latency, and the memory of windowing "
            "a 10-million-point series. Prints a table and writes JSON."
        ),
    )
    p.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="where to write the results JSON (default: benchmarks/results.json)",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, for the smoke test; the numbers mean nothing"
    )
    p.add_argument("--reps", type=int, default=None, help="seed pairs per speed shape (default 5; quick 1)")
    p.add_argument(
        "--speed-epochs",
        type=int,
        default=None,
        help="epochs per speed run, the first one untimed (default 6 at L=96, 4 at L=336; quick 2)",
    )
    p.add_argument(
        "--shapes",
        nargs="+",
        choices=sorted(SPEED_SHAPES),
        default=None,
        help=f"speed shapes to run (default: all; {CONTRACT_SHAPE} always runs: the contract keys)",
    )
    p.add_argument(
        "--horizons",
        type=int,
        nargs="+",
        default=None,
        help="accuracy horizons H (default 24 48 96; quick 24)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=900.0,
        help="wall-clock budget in seconds (default 900): speed pairs stop at 22%% (L=96) and 50%% "
        "(L=336) of it, accuracy runs that would pass it are stopped and reported as skipped",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for every loop and the inference step (default: torch's own)",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also run ours with bf16 off and one shard at the L=96 pairs' seeds (about a minute "
        "more): what the speed-ups cost in accuracy",
    )
    p.add_argument(
        "--hourly-proxy",
        action="store_true",
        help="also a smoke check, not a result: the pipeline with only the params an hourly "
        "benchmark sets (row-count split, L=H=96, period 24) on a synthetic hourly series",
    )
    p.add_argument("--keep-scratch", action="store_true", help="keep the scratch dir (worker logs, models)")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_speed(a: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Every requested shape's pairs (the contract shape first), then the ablation."""
    from benchmarks.speed import CPU_SETTINGS, bench_ablation, bench_speed

    shapes = [CONTRACT_SHAPE, *[s for s in (a.shapes or SPEED_SHAPES) if s != CONTRACT_SHAPE]]
    reps = a.reps or (1 if a.quick else 5)
    by_shape: dict[str, Any] = {}
    for shape in shapes:
        sample_load(f"speed {shape}")
        epochs = a.speed_epochs or speed_shape(shape, a.quick)["epochs"]
        deadline = T0 + SPEED_DEADLINES.get(shape, 0.5) * a.budget_s
        log(f"speed {shape}: ours vs plain loop, {reps} seed pairs x {epochs} epochs")
        by_shape[shape] = bench_speed(
            shape,
            reps,
            epochs,
            a.quick,
            scratch,
            deadline,
            a.threads,
            plain_recipe=shape == CONTRACT_SHAPE and not a.quick,
        )
    if a.ablation:
        sample_load("ablation")
        sp = by_shape[CONTRACT_SHAPE]
        sp["ablation"] = bench_ablation(
            sp["runs"]["ours"],
            sp["setup"]["epochs"],
            a.quick,
            scratch,
            T0 + ABLATION_DEADLINE * a.budget_s,
            a.threads,
        )
    return {"contract_shape": CONTRACT_SHAPE, "cpu_settings": CPU_SETTINGS, "shapes": by_shape}


def run_accuracy_and_inference(a: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """The pipeline at each horizon, then inference latency on the params.yaml-horizon model."""
    from benchmarks.accuracy import bench_accuracy
    from benchmarks.micro import bench_inference

    horizons = a.horizons or ([24] if a.quick else [24, 48, 96])
    sample_load("accuracy")
    by_h, inf_model = bench_accuracy(horizons, a.quick, scratch, T0 + a.budget_s, a.threads)
    out: dict[str, Any] = {
        "accuracy": {
            "note": "QUICK: L=48, stride 4, 1 epoch, not a real result"
            if a.quick
            else f"params.yaml defaults, L={ACCURACY_L}, period {ACCURACY_PERIOD}",
            "metric": "mse_scaled over every stride-1 test window and horizon step",
            "by_horizon": by_h,
            "lstm_wins_all_run": all(v["beats_all"] for v in by_h.values() if "skipped" not in v),
            "horizons_skipped": sorted(int(h) for h, v in by_h.items() if "skipped" in v),
        },
        "inference": None,
    }
    if inf_model is None:
        out["inference_note"] = "no trained model: every accuracy run was skipped"
        return out
    sample_load("inference")
    log(f"inference: model H={inf_model['horizon']}, L={inf_model['input_size']}")
    out["inference"] = bench_inference(
        Path(inf_model["model_path"]), Path(inf_model["prepared_path"]), a.quick
    )
    return out


def run_all(a: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Every step in order; the results dict with the contract keys on top."""
    from benchmarks.accuracy import bench_hourly_proxy
    from benchmarks.micro import peak_rss
    from benchmarks.speed import bench_cuda

    env = environment()
    load = sample_load("start")
    if load[0] > 0.5 * (env["cpus_usable"] or 1):
        log(f"warning: load average {load[0]:.1f} on {env['cpus_usable']} CPUs: timings will be noisy")
    log("windowing: 10M-point series as a panel of one, tracemalloc, in its own process")
    w = run_worker("windowing", {}, scratch, timeout=None)
    log(f"windowing: peak {w['peak_bytes']:,} B for {w['n_windows']:,} windows")
    speed = run_speed(a, scratch)
    acc = run_accuracy_and_inference(a, scratch)
    results: dict[str, Any] = {"quick": a.quick}
    if a.hourly_proxy:
        sample_load("hourly smoke check")
        results["hourly_proxy"] = bench_hourly_proxy(a.quick, scratch, T0 + a.budget_s, a.threads)
    log("cuda: checking for a GPU")
    cuda, cuda_note = bench_cuda(speed["shapes"][CONTRACT_SHAPE]["setup"]["epochs"], a.quick, scratch)
    sample_load("end")
    env["loadavg_end"] = list(os.getloadavg())
    main_sp, memory, inf = speed["shapes"][CONTRACT_SHAPE], peak_rss(speed["shapes"]), acc["inference"]
    results.update(
        {
            "train_samples_per_second": main_sp["ours_samples_per_second"],
            "plain_loop_samples_per_second": main_sp["plain_samples_per_second"],
            "train_speedup_vs_plain_loop": main_sp["speedup"],
            "peak_rss_mb": memory["ours_mb"],
            "predict_one_ms": inf["predict_one_ms"] if inf else None,
            "predict_1000_ms": inf["predict_1000_ms"] if inf else None,
            "windowing_peak_bytes_10m": w["peak_bytes"],
            "contract_keys_note": f"the speed keys are the {CONTRACT_SHAPE} shape's medians; "
            "speed.shapes holds every shape",
            "val_mse_ours": main_sp["val_mse"]["ours_mean"],
            "val_mse_plain_loop": main_sp["val_mse"]["ref_mean"],
            "speed": speed,
            "memory": memory,
            **acc,
            "windowing": w,
            "cuda": cuda,
            "cuda_note": cuda_note,
            "environment": env,
            "load": load_summary(),
            "elapsed_s": time.perf_counter() - T0,
        }
    )
    missing = [k for k in CONTRACT_KEYS if k not in results]
    assert not missing, f"results lack the contract keys {missing}"
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden --worker, one subprocess worker)."""
    a = parse_args(argv)
    if a.worker:
        return worker_main(a.worker, a.worker_args, a.worker_out)
    from benchmarks.report import print_table, write_results

    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    scratch = Path(tempfile.mkdtemp(prefix="tsforecast-bench-"))
    log(f"scratch dir {scratch}; {'QUICK mode' if a.quick else 'full run'}, budget {a.budget_s:.0f}s")
    try:
        results = run_all(a, scratch)
        write_results(results, a.output)
        print_table(results)
        log(f"wrote {a.output}")
    finally:
        if a.keep_scratch:
            log(f"scratch kept at {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
