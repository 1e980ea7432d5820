"""Training speed: our loop (``tsforecast.training.train.fit``) against the plain loop, in seed-paired,
alternating fresh subprocesses, at each window shape of ``bench_data.SPEED_SHAPES``.

Pair r runs both loops with ``train.seed + r``, in the order (ours, plain) for even r and
(plain, ours) for odd r, so drifting machine load hits both. A run's samples/s is its median
timed epoch; a shape's number is the median over runs, and the per-pair ratios give the spread.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import WorkerFailed, log, run_worker
from benchmarks.stats import paired_comparison, spread

TARGET_SPEEDUP = 1.5
DETECT_REL = 0.04  # the accuracy comparison should be able to see a 4 % difference in val MSE
CPU_SETTINGS = (
    "both loops: flush-denormal and the allocator thresholds (tsforecast.training.train.fast_cpu_math, "
    "as run_train applies them) are set in each worker before training"
)


def _log_run(shape: str, i: int, n: int, res: dict[str, Any], seconds: float) -> None:
    log(
        f"speed {shape} {i}/{n}: {res['loop']:5s} seed {res['seed']} "
        f"{res['samples_per_second']:8.1f} samples/s (median epoch; total "
        f"{res['samples_per_second_total']:.1f}, per CPU-s {res['samples_per_cpu_second']:.1f}), "
        f"val MSE {res['val_mse_final']:.4f} ({seconds:.1f}s)"
    )


def run_pairs(
    shape: str, reps: int, epochs: int, quick: bool, scratch: Path, deadline: float, threads: int | None
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Alternating seed pairs; stops early (at least one pair runs) when the next would pass
    ``deadline``. Returns the runs of each loop and the order they ran in."""
    from benchmarks.bench_data import PARAMS
    from tsforecast.config import load_config

    base_seed = load_config(PARAMS).train.seed
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    order: list[str] = []
    for r in range(reps):
        t_pair = time.perf_counter()
        for loop in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
            t = time.perf_counter()
            args = {"epochs": epochs, "quick": quick, "threads": threads, "seed": base_seed + r}
            res = run_worker(loop, {**args, "shape": shape}, scratch, timeout=None)
            runs[loop].append(res)
            order.append(loop)
            _log_run(shape, len(order), 2 * reps, res, time.perf_counter() - t)
        if r + 1 < reps and time.perf_counter() + (time.perf_counter() - t_pair) > deadline:
            log(f"speed {shape}: stopping after {r + 1} of {reps} pairs: the next would pass the budget")
            break
    return runs, order


def setup_description(shape: str, quick: bool, epochs: int, threads: int | None) -> dict[str, Any]:
    """What both loops ran: data, window, model, steps, and what each loop is."""
    from benchmarks.bench_data import speed_shape

    s = speed_shape(shape, quick)
    return {
        "shape": shape,
        "data": "Taylor half-hourly demand (pmdarima), scaled by train mean/std"
        + (f", first {s['rows']} rows" if quick else ""),
        "input_size": s["L"],
        "horizon": s["H"],
        "batch_size": s["batch_size"],
        "model": f"LSTMForecaster, {s['num_layers']} layers, hidden {s['hidden_size']}, "
        "window_norm/linear_skip/dropout from params.yaml",
        "epochs": epochs,
        "timed": "every epoch but the first (warm-up); training steps only, validation excluded",
        "threads": threads or "torch default",
        "cpu_settings": CPU_SETTINGS,
        "ours": "tsforecast.training.train.fit on the series as a panel of one: every train window once "
        "per epoch in a seeded shuffle, each batch gathered from the panel (Panel.gather), batch split "
        "over train.cpu_shards threads (one core each, gradients summed), bf16 autocast where the CPU "
        "has native bf16, fused AdamW, cosine LR, grad clip",
        "seeds": "pair r runs both loops with train.seed + r",
        "plain": "DataLoader(TensorDataset(windows materialised with torch at the start rows of the "
        "panel's train windows), shuffle=True), torch.optim.Adam defaults, MSE, nothing tuned; "
        "validated on the same val windows as ours",
    }


def summarise_pairs(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians, per-pair speedups with their spread, and the seed-paired val MSE comparison."""

    def med(loop: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[loop])

    pairs = list(zip(runs["ours"], runs["plain"], strict=True))
    ours_sps, plain_sps = med("ours", "samples_per_second"), med("plain", "samples_per_second")
    ratios = [o["samples_per_second"] / p["samples_per_second"] for o, p in pairs]
    ours_vals = [o["val_mse_final"] for o, _ in pairs]
    plain_vals = [p["val_mse_final"] for _, p in pairs]
    return {
        "ours_samples_per_second": ours_sps,
        "plain_samples_per_second": plain_sps,
        "speedup": ours_sps / plain_sps,  # ratio of the medians: the contract key
        "speedup_per_pair": ratios,
        "speedup_pairs": spread(ratios),
        "ours_samples_per_second_runs": spread([o["samples_per_second"] for o, _ in pairs]),
        "plain_samples_per_second_runs": spread([p["samples_per_second"] for _, p in pairs]),
        "speedup_total_time": med("ours", "samples_per_second_total")
        / med("plain", "samples_per_second_total"),
        "speedup_cpu_time": med("ours", "samples_per_cpu_second") / med("plain", "samples_per_cpu_second"),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ours_sps / plain_sps >= TARGET_SPEEDUP,
        "val_mse": paired_comparison(ours_vals, plain_vals, DETECT_REL),
        "val_mse_by_seed": [
            {"seed": o["seed"], "ours": o["val_mse_final"], "plain": p["val_mse_final"]} for o, p in pairs
        ],
        "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["ours"]),
        "plain_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["plain"]),
        "timed_steps_per_run": runs["ours"][0]["timed_steps"],
        "warmup_steps_per_run": runs["ours"][0]["warmup_steps"],
    }


def ours_with_plain_recipe(
    shape: str, epochs: int, quick: bool, scratch: Path, threads: int | None, seed: int
) -> dict[str, Any]:
    """fit() once with the plain loop's optimisation (Adam 1e-3, constant LR, no clip)."""
    args = {"epochs": epochs, "quick": quick, "threads": threads, "recipe": "plain", "seed": seed}
    res = run_worker("ours", {**args, "shape": shape}, scratch, None)
    log(
        f"speed {shape}: ours with the plain loop's recipe: {res['samples_per_second']:.1f} samples/s, "
        f"val MSE {res['val_mse_final']:.4f}"
    )
    return {
        "what": "fit() with train.lr=1e-3, weight_decay 0, constant LR, no grad clip: the plain "
        "loop's optimisation, our batching; run once, after the pairs, at the first pair's seed",
        "seed": seed,
        "samples_per_second": res["samples_per_second"],
        "val_mse_final": res["val_mse_final"],
        "epoch_seconds": res["epoch_seconds"],
    }


def bench_speed(
    shape: str,
    reps: int,
    epochs: int,
    quick: bool,
    scratch: Path,
    deadline: float,
    threads: int | None,
    plain_recipe: bool = False,
) -> dict[str, Any]:
    """One shape: the pairs, their summary, and (``plain_recipe``) ours with the plain recipe."""
    t0 = time.perf_counter()
    runs, order = run_pairs(shape, reps, epochs, quick, scratch, deadline, threads)
    out = {
        "setup": {
            **setup_description(shape, quick, epochs, threads),
            "repetitions": len(runs["ours"]),
            "repetitions_asked": reps,
            "order": order,
        },
        **summarise_pairs(runs),
    }
    per_pair = (time.perf_counter() - t0) / len(runs["ours"])
    if plain_recipe and time.perf_counter() + per_pair / 2 <= deadline:
        out["ours_with_plain_recipe"] = ours_with_plain_recipe(
            shape, epochs, quick, scratch, threads, runs["ours"][0]["seed"]
        )
    out["runs"] = runs
    sp = out["speedup_pairs"]
    log(
        f"speed {shape}: {out['speedup']:.2f}x ({out['ours_samples_per_second']:.0f} vs "
        f"{out['plain_samples_per_second']:.0f}); per pair median {sp['median']:.2f}, "
        f"range {sp['min']:.2f}-{sp['max']:.2f}"
    )
    return out


def bench_ablation(
    ours_runs: list[dict[str, Any]],
    epochs: int,
    quick: bool,
    scratch: Path,
    deadline: float,
    threads: int | None,
) -> dict[str, Any]:
    """Ours again at the pairs' seeds with bf16 off and one shard: what the two speed-ups
    cost in accuracy (val MSE at the same seeds) and what they buy (samples/s)."""
    shape = ours_runs[0]["shape"]
    seeds = [r["seed"] for r in ours_runs]
    runs = []
    for seed in seeds:
        t = time.perf_counter()
        args = {"epochs": epochs, "quick": quick, "threads": threads, "seed": seed, "fp32_unsharded": True}
        res = run_worker("ours", {**args, "shape": shape}, scratch, None)
        runs.append(res)
        log(
            f"ablation {len(runs)}/{len(seeds)}: ours fp32, one shard, seed {seed}: "
            f"{res['samples_per_second']:.1f} samples/s, val MSE {res['val_mse_final']:.4f} "
            f"({time.perf_counter() - t:.1f}s)"
        )
        if time.perf_counter() + (time.perf_counter() - t) > deadline and len(runs) < len(seeds):
            log(f"ablation: stopping after {len(runs)} of {len(seeds)} seeds: the time budget")
            break
    full = [r["val_mse_final"] for r in ours_runs[: len(runs)]]  # the budget may have cut the seeds
    return {
        "what": "tsforecast.training.train.fit with TSFORECAST_CPU_BF16=0 and train.cpu_shards=1, at the seeds "
        "of the speed pairs",
        "shape": shape,
        "seeds": [r["seed"] for r in runs],
        "samples_per_second": statistics.median(r["samples_per_second"] for r in runs),
        "val_mse_mean": statistics.fmean(r["val_mse_final"] for r in runs),
        "val_mse_by_seed": {str(r["seed"]): r["val_mse_final"] for r in runs},
        "val_mse_mean_full_loop_same_seeds": statistics.fmean(full),
        "full_loop_cpu_shards": ours_runs[0]["cpu_shards"],
        "full_loop_cpu_bf16": ours_runs[0]["cpu_bf16"],
        "val_mse_full_vs_ablation": paired_comparison(full, [r["val_mse_final"] for r in runs], DETECT_REL),
        "epoch_seconds": [r["epoch_seconds"] for r in runs],
    }


def bench_cuda(epochs: int, quick: bool, scratch: Path) -> tuple[dict[str, Any] | None, str]:
    """Ours on the GPU with the contract shape's data and steps, when torch sees one."""
    import torch

    if not torch.cuda.is_available():
        return None, "torch.cuda.is_available() is False on this machine: no CUDA run"
    try:
        res = run_worker("ours", {"epochs": epochs, "quick": quick, "device": "cuda"}, scratch, None)
    except WorkerFailed as e:
        return None, f"the CUDA run failed: {str(e).splitlines()[0]}"
    keep = ("device", "device_name", "samples_per_second", "val_mse_final", "timed_steps", "timed_seconds")
    return {
        k: res[k] for k in keep
    }, "ours (tsforecast.training.train.fit) on CUDA, same data and steps as on the CPU"
