"""Benchmarks: training speed against a plain PyTorch loop, accuracy against the baselines,
inference latency and windowing memory. Prints a table and writes benchmarks/results.json.

    python benchmarks/run.py            # the full run, under 10 minutes on 2 cores
    python benchmarks/run.py --quick    # tiny sizes, for the smoke test
    python benchmarks/run.py --help

Every training run happens in a fresh subprocess, so the allocator and denormal settings
of our loop (``tsforecast.train.fast_cpu_math``) never leak into the plain loop, and the
two loops alternate (ours, plain, plain, ours, ...) so drifting machine load hits both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # bench_data, plain_loop: helpers beside this file

DEFAULT_OUTPUT = HERE / "results.json"
CONTRACT_KEYS = (
    "train_samples_per_second",
    "plain_loop_samples_per_second",
    "train_speedup_vs_plain_loop",
    "peak_rss_mb",
    "predict_one_ms",
    "predict_1000_ms",
    "windowing_peak_bytes_10m",
)
TARGET_SPEEDUP = 1.5
ACCURACY_L = 336  # a week of half-hours
ACCURACY_PERIOD = 336
INFERENCE_H = 48  # the horizon in params.yaml: the model inference latency is measured on
WINDOWING_ROWS = 10_000_000
WINDOWING_L, WINDOWING_H = 336, 48
VAL_MSE_TOLERANCE = (
    1.05  # "no loss of accuracy": ours' mean val MSE over the seeds at most 5% above the plain loop's
)

T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress on stderr with the elapsed time, so a 10-minute run is never silent."""
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- workers
# Each runs in its own subprocess: ``run.py --worker NAME --worker-args JSON --worker-out PATH``.


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rusage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user_s": r.ru_utime,
        "sys_s": r.ru_stime,
        "minor_faults": r.ru_minflt,
        "invol_ctx_switches": r.ru_nivcsw,
    }


def _rusage_delta(before: dict[str, float]) -> dict[str, float]:
    after = _rusage()
    return {k: round(after[k] - before[k], 3) for k in before}


def _timed_summary(
    history: list[dict[str, Any]], n_train: int, batch_size: int, ru: dict[str, float]
) -> dict[str, Any]:
    """samples/s over every epoch but the first (warm-up), and the val MSE reached.

    ``samples_per_second`` uses the median timed epoch, so a burst of load from other
    processes during one epoch does not decide the number; ``samples_per_second_total``
    is the plain total-samples / total-seconds.
    """
    timed = history[1:] if len(history) > 1 else history
    secs = [h["seconds"] for h in timed]
    steps_per_epoch = math.ceil(n_train / batch_size)
    cpu_s = ru["user_s"] + ru["sys_s"]
    return {
        "samples_per_second": n_train / max(statistics.median(secs), 1e-9),
        "samples_per_second_total": n_train * len(secs) / max(sum(secs), 1e-9),
        "samples_per_cpu_second": n_train * len(history) / max(cpu_s, 1e-9),
        "timed_epochs": len(timed),
        "timed_steps": steps_per_epoch * len(timed),
        "timed_seconds": sum(secs),
        "warmup_steps": steps_per_epoch * (len(history) - len(timed)),
        "val_mse_final": history[-1]["val_loss"],
        "val_mse_best": min(h["val_loss"] for h in history),
        "train_loss_final": history[-1]["train_loss"],
        "epoch_seconds": [round(h["seconds"], 3) for h in history],
        "n_train_windows": n_train,
        "rusage_train": ru,
    }


def worker_ours(args: dict[str, Any]) -> dict[str, Any]:
    """Our loop: tsforecast.train.fit, after fast_cpu_math() as run_train does."""
    import torch
    from bench_data import speed_setup

    from tsforecast.train import fit
    from tsforecast.trainstep import cpu_shards, fast_cpu_math, tune_allocator

    recipe = args.get("recipe", "params")
    plain_math = bool(args.get("fp32_unsharded"))  # the ablation: our loop without its two speed-ups
    if plain_math:
        os.environ["TSFORECAST_CPU_BF16"] = "0"
    extra = {"train.cpu_shards": 1} if plain_math else None
    setup = speed_setup(args["epochs"], args["quick"], recipe, args.get("seed"), extra)
    device = torch.device(args.get("device", "cpu"))
    fast_cpu_math()
    allocator_tuned = tune_allocator()  # idempotent: reports whether mallopt took
    rss_before, ru = _rss_mb(), _rusage()
    _, info = fit(setup.cfg, setup.prepared, device, progress=False)
    ru = _rusage_delta(ru)
    out = _timed_summary(info["history"], info["n_train_windows"], setup.cfg.train.batch_size, ru)
    out.update(
        loop="ours",
        recipe=recipe,
        fp32_unsharded=plain_math,
        seed=setup.cfg.train.seed,
        cpu_shards=cpu_shards(setup.cfg.train, device),
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        threads=torch.get_num_threads(),
        flush_denormal=True,
        allocator_tuned=allocator_tuned,
        rss_before_train_mb=rss_before,
        peak_rss_mb=_peak_rss_mb(),
    )
    return out


def worker_plain(args: dict[str, Any]) -> dict[str, Any]:
    """The plain loop: DataLoader over materialised windows, default Adam, MSE."""
    import torch
    from bench_data import speed_setup
    from plain_loop import train_plain

    setup = speed_setup(args["epochs"], args["quick"], seed=args.get("seed"))
    rss_before, ru = _rss_mb(), _rusage()
    info = train_plain(setup)
    ru = _rusage_delta(ru)
    out = _timed_summary(info["history"], info["n_train_windows"], setup.cfg.train.batch_size, ru)
    out.update(
        loop="plain",
        seed=setup.cfg.train.seed,
        device="cpu",
        threads=torch.get_num_threads(),
        flush_denormal=False,
        allocator_tuned=False,
        rss_before_train_mb=rss_before,
        peak_rss_mb=_peak_rss_mb(),
    )
    return out


def accuracy_overrides(horizon: int, quick: bool) -> dict[str, Any]:
    """params.yaml as it is, but for the horizon; quick mode shrinks L and trains one epoch."""
    if quick:
        return {
            "window.horizon": horizon,
            "window.input_size": 48,
            "evaluate.seasonal_period": 48,
            "window.stride": 4,
            "train.epochs": 1,
            "evaluate.plot_windows": 0,
        }
    return {
        "window.horizon": horizon,
        "window.input_size": ACCURACY_L,
        "evaluate.seasonal_period": ACCURACY_PERIOD,
        "evaluate.plot_windows": 0,  # the forecast grid PNG only: metrics are untouched
    }


def worker_accuracy(args: dict[str, Any]) -> dict[str, Any]:
    """The whole pipeline, ingest to evaluate, in a scratch repo dir; test metrics back."""
    import yaml

    from tsforecast import stages
    from tsforecast.config import load_config
    from tsforecast.io import read_json
    from tsforecast.paths import Paths

    root = Path(args["root"])
    overrides = args.get("overrides") or accuracy_overrides(args["horizon"], args["quick"])
    cfg = load_config(REPO / "params.yaml", overrides)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    paths = Paths.from_root(root)
    stage_s: dict[str, float] = {}
    for name in stages.NAMES[: stages.NAMES.index("evaluate") + 1]:
        t = time.perf_counter()
        stages.run_stage(name, cfg, paths)
        stage_s[name] = round(time.perf_counter() - t, 2)
    ev = read_json(paths.metrics / "evaluate.json")
    tr = read_json(paths.metrics / "train.json")
    base = ev["baselines"]
    return {
        "horizon": ev["horizon"],
        "input_size": ev["input_size"],
        "seasonal_period": ev["seasonal_period"],
        "epochs_configured": cfg.train.epochs,
        "epochs_run": tr["epochs"],
        "best_epoch": tr["best_epoch"],
        "stopped_early": tr["stopped_early"],
        "n_test_windows": ev["n_windows"],
        "lstm_mse_scaled": ev["mse_scaled"],
        "lstm_mae_scaled": ev["mae_scaled"],
        "repeat_last_mse_scaled": base["repeat_last"]["mse_scaled"],
        "seasonal_naive_mse_scaled": base["seasonal_naive"]["mse_scaled"],
        "lstm_mase": ev["mase"],
        "seasonal_naive_mase": base["seasonal_naive"]["mase"],
        "beats": ev["beats"],
        "beats_all": all(ev["beats"].values()),
        "train_samples_per_second": tr["samples_per_second"],
        "stage_seconds": stage_s,
        "model_path": str(paths.models / "model.pt"),
        "prepared_path": str(paths.prepared),
    }


WORKERS = {"ours": worker_ours, "plain": worker_plain, "accuracy": worker_accuracy}


def worker_main(name: str, raw_args: str, out_path: str) -> int:
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    args = json.loads(raw_args)
    if args.get("threads"):
        torch.set_num_threads(args["threads"])
    result = WORKERS[name](args)
    Path(out_path).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- orchestration


class WorkerFailed(RuntimeError):
    pass


def _clean_env() -> dict[str, str]:
    """The environment a worker starts with: no inherited malloc tuning, no progress bars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("TSFORECAST_NO_MALLOPT", None)
    env["TQDM_DISABLE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(name: str, args: dict[str, Any], scratch: Path, timeout: float | None) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its output (logs) goes to a file under ``scratch``."""
    tag = f"{name}-{len(list(scratch.glob('*.log')))}"
    out, log_path = scratch / f"{tag}.json", scratch / f"{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
    cmd += ["--worker-args", json.dumps(args), "--worker-out", str(out)]
    with open(log_path, "w") as fh:
        try:
            proc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=_clean_env(), cwd=REPO, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise WorkerFailed(
                f"{name} worker passed its {timeout:.0f}s time budget and was stopped"
            ) from None
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise WorkerFailed(f"{name} worker failed (exit {proc.returncode}); last lines:\n{tail}")
    return json.loads(out.read_text())


def bench_speed(
    reps: int, epochs: int, quick: bool, scratch: Path, deadline: float, threads: int | None
) -> dict[str, Any]:
    """Ours vs the plain loop, alternating (ours, plain), (plain, ours), ..., each in a fresh
    subprocess. Pairs stop early (at least one runs) when the next would pass ``deadline``."""
    from bench_data import PARAMS

    from tsforecast.config import load_config

    base_seed = load_config(PARAMS).train.seed
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    order: list[str] = []
    for r in range(reps):
        pair = ["ours", "plain"] if r % 2 == 0 else ["plain", "ours"]
        t_pair = time.perf_counter()
        for loop in pair:
            t = time.perf_counter()
            args = {"epochs": epochs, "quick": quick, "threads": threads, "seed": base_seed + r}
            res = run_worker(loop, args, scratch, timeout=None)
            runs[loop].append(res)
            order.append(loop)
            log(
                f"speed {len(order)}/{2 * reps}: {loop:5s} seed {base_seed + r} "
                f"{res['samples_per_second']:8.1f} samples/s "
                f"(median epoch; total {res['samples_per_second_total']:.1f}, "
                f"per CPU-s {res['samples_per_cpu_second']:.1f}), val MSE {res['val_mse_final']:.4f} "
                f"({time.perf_counter() - t:.1f}s)"
            )
        pair_s = time.perf_counter() - t_pair
        if r + 1 < reps and time.perf_counter() + pair_s > deadline:
            log(f"speed: stopping after {r + 1} of {reps} pairs: the next pair would pass the time budget")
            break
    reps_done = len(runs["ours"])
    same_recipe = None
    if not quick and time.perf_counter() + pair_s / 2 <= deadline:
        t = time.perf_counter()
        same_recipe = run_worker(
            "ours",
            {"epochs": epochs, "quick": quick, "threads": threads, "recipe": "plain", "seed": base_seed},
            scratch,
            None,
        )
        log(
            f"speed: ours with the plain loop's recipe (Adam 1e-3, no schedule/clip): "
            f"{same_recipe['samples_per_second']:.1f} samples/s, val MSE {same_recipe['val_mse_final']:.4f} "
            f"({time.perf_counter() - t:.1f}s)"
        )

    def med(loop: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[loop])

    ours_sps, plain_sps = med("ours", "samples_per_second"), med("plain", "samples_per_second")
    pair_ratios = [
        o["samples_per_second"] / p["samples_per_second"]
        for o, p in zip(runs["ours"], runs["plain"], strict=True)
    ]
    # Accuracy over seeds: pair r ran both loops with seed base + r, so the mean over pairs
    # compares the loops, and the spread shows how much of a difference is the seed's.
    ours_vals = [r["val_mse_final"] for r in runs["ours"]]
    plain_vals = [r["val_mse_final"] for r in runs["plain"]]
    ours_val, plain_val = statistics.fmean(ours_vals), statistics.fmean(plain_vals)

    def sd(v: list[float]) -> float:
        return statistics.stdev(v) if len(v) > 1 else 0.0

    diffs = [o - p for o, p in zip(ours_vals, plain_vals, strict=True)]  # same seed, ours - plain

    from bench_data import QUICK_SPEED, SPEED

    s = QUICK_SPEED if quick else SPEED
    return {
        "setup": {
            "data": "Taylor half-hourly demand (pmdarima), scaled by train mean/std"
            + (f", first {QUICK_SPEED['rows']} rows" if quick else ""),
            "input_size": s["L"],
            "horizon": s["H"],
            "batch_size": s["batch_size"],
            "model": f"LSTMForecaster, {s['num_layers']} layers, hidden {s['hidden_size']}, "
            "window_norm/linear_skip/dropout from params.yaml",
            "epochs": epochs,
            "timed": "every epoch but the first (warm-up); training steps only, validation excluded",
            "repetitions": reps_done,
            "repetitions_asked": reps,
            "order": order,
            "threads": threads or "torch default",
            "ours": "tsforecast.train.fit after fast_cpu_math(): unfold-view batches, batch split over "
            "train.cpu_shards threads (one core each, gradients summed), bf16 autocast where the CPU "
            "has native bf16, fused AdamW, cosine LR, grad clip, flush-denormal, mallopt",
            "seeds": "pair r runs both loops with train.seed + r",
            "plain": "DataLoader(TensorDataset(materialised windows), shuffle=True), torch.optim.Adam "
            "defaults, MSE, nothing tuned",
        },
        "ours_samples_per_second": ours_sps,
        "plain_samples_per_second": plain_sps,
        "speedup": ours_sps / plain_sps,
        "speedup_per_pair": pair_ratios,
        "speedup_total_time": med("ours", "samples_per_second_total")
        / med("plain", "samples_per_second_total"),
        "speedup_cpu_time": med("ours", "samples_per_cpu_second") / med("plain", "samples_per_cpu_second"),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ours_sps / plain_sps >= TARGET_SPEEDUP,
        "ours_val_mse": ours_val,
        "plain_val_mse": plain_val,
        "ours_val_mse_sd": sd(ours_vals),
        "plain_val_mse_sd": sd(plain_vals),
        "val_mse_by_seed": [
            {"seed": o["seed"], "ours": o["val_mse_final"], "plain": p["val_mse_final"]}
            for o, p in zip(runs["ours"], runs["plain"], strict=True)
        ],
        "val_mse_paired_diff_mean": statistics.fmean(diffs),
        "val_mse_paired_diff_se": sd(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None,
        "val_mse_tolerance": VAL_MSE_TOLERANCE,
        "no_accuracy_loss": ours_val <= plain_val * VAL_MSE_TOLERANCE,
        "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["ours"]),
        "plain_peak_rss_mb": max(r["peak_rss_mb"] for r in runs["plain"]),
        "timed_steps_per_run": runs["ours"][0]["timed_steps"],
        "warmup_steps_per_run": runs["ours"][0]["warmup_steps"],
        "ours_with_plain_recipe": same_recipe
        and {
            "what": "fit() with train.lr=1e-3, weight_decay 0, constant LR, no grad clip: the plain "
            "loop's optimisation, our batching and CPU settings; run once, after the pairs",
            "samples_per_second": same_recipe["samples_per_second"],
            "val_mse_final": same_recipe["val_mse_final"],
            "epoch_seconds": same_recipe["epoch_seconds"],
        },
        "runs": runs,
    }


def bench_ablation(
    ours_runs: list[dict[str, Any]],
    epochs: int,
    quick: bool,
    scratch: Path,
    deadline: float,
    threads: int | None,
) -> dict[str, Any]:
    """Ours again at the speed pairs' seeds with bf16 off and one shard: what the two speed-ups
    cost in accuracy (val MSE at the same seeds) and what they buy (samples/s)."""
    seeds = [r["seed"] for r in ours_runs]
    runs = []
    for seed in seeds:
        t = time.perf_counter()
        res = run_worker(
            "ours",
            {"epochs": epochs, "quick": quick, "threads": threads, "seed": seed, "fp32_unsharded": True},
            scratch,
            None,
        )
        runs.append(res)
        log(
            f"ablation {len(runs)}/{len(seeds)}: ours fp32, one shard, seed {seed}: "
            f"{res['samples_per_second']:.1f} samples/s, val MSE {res['val_mse_final']:.4f} "
            f"({time.perf_counter() - t:.1f}s)"
        )
        if time.perf_counter() + (time.perf_counter() - t) > deadline and len(runs) < len(seeds):
            log(f"ablation: stopping after {len(runs)} of {len(seeds)} seeds: the time budget")
            break
    return {
        "what": "tsforecast.train.fit with TSFORECAST_CPU_BF16=0 and train.cpu_shards=1, at the seeds "
        "of the speed pairs",
        "seeds": [r["seed"] for r in runs],
        "samples_per_second": statistics.median(r["samples_per_second"] for r in runs),
        "val_mse_mean": statistics.fmean(r["val_mse_final"] for r in runs),
        "val_mse_by_seed": {str(r["seed"]): r["val_mse_final"] for r in runs},
        # the budget may have cut the seeds: the full loop at those seeds only
        "val_mse_mean_full_loop_same_seeds": statistics.fmean(
            r["val_mse_final"] for r in ours_runs[: len(runs)]
        ),
        "epoch_seconds": [r["epoch_seconds"] for r in runs],
    }


def bench_windowing(rows: int = WINDOWING_ROWS) -> dict[str, Any]:
    """Peak bytes numpy allocates (tracemalloc) while building every window of a long series."""
    import numpy as np

    from tsforecast.windowing import sliding_windows

    series = np.random.default_rng(0).standard_normal((rows, 1), dtype=np.float32)  # (rows, 1)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        t = time.perf_counter()
        X, Y = sliding_windows(series, WINDOWING_L, WINDOWING_H)  # (N, L, 1), (N, H): views
        build_s = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        idx = np.random.default_rng(1).integers(0, X.shape[0], 64)
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        t = time.perf_counter()
        xb, yb = X[idx], Y[idx]  # (64, L, 1), (64, H): the one copy a batch needs
        gather_s = time.perf_counter() - t
        _, gather_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "rows": rows,
        "input_size": WINDOWING_L,
        "horizon": WINDOWING_H,
        "n_windows": int(X.shape[0]),
        "series_bytes": int(series.nbytes),
        "peak_bytes": int(peak),
        "peak_over_series": peak / series.nbytes,
        "materialised_bytes_would_be": int(X.shape[0]) * (WINDOWING_L + WINDOWING_H) * 4,
        "windows_share_memory": bool(np.shares_memory(X, series) and np.shares_memory(Y, series)),
        "build_ms": build_s * 1e3,
        "batch64_peak_bytes": int(gather_peak - before),
        "batch64_bytes": int(xb.nbytes + yb.nbytes),
        "batch64_ms": gather_s * 1e3,
    }


def bench_inference(model_path: Path, prepared_path: Path, quick: bool) -> dict[str, Any]:
    """Median latency of one forecast and of 1,000 (one batch), CPU, inference_mode."""
    import numpy as np
    import torch

    from tsforecast.model import load_model
    from tsforecast.windowing import load_prepared

    model, _ = load_model(model_path)
    model.eval()
    prep = load_prepared(prepared_path)
    L = prep.input_size
    series = torch.from_numpy(np.ascontiguousarray(prep.series, dtype=np.float32))  # (rows, C)
    windows = series.unfold(0, L, 1).transpose(1, 2)  # (rows-L+1, L, C), a view
    test_start = prep.bounds.test[0]
    x1 = windows[test_start - L : test_start - L + 1].contiguous()  # (1, L, C): the first test input
    idx = torch.from_numpy(np.linspace(0, len(windows) - 1, 1000).round().astype("int64"))
    x1000 = windows[idx].contiguous()  # (1000, L, C)
    one_reps, many_reps = (30, 3) if quick else (300, 20)

    def timeit(x: torch.Tensor, warmup: int, reps: int, cap_s: float) -> list[float]:
        """Up to ``reps`` timings in ms, stopping after ``cap_s`` seconds (at least 5)."""
        times: list[float] = []
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            t_end = time.perf_counter() + cap_s
            while len(times) < reps and (len(times) < 5 or time.perf_counter() < t_end):
                t = time.perf_counter_ns()
                model(x)
                times.append((time.perf_counter_ns() - t) / 1e6)
        return times

    one = timeit(x1, 10, one_reps, cap_s=3.0)
    many = timeit(x1000, 2, many_reps, cap_s=8.0)
    q = statistics.quantiles
    return {
        "model": str(model_path.name),
        "input_size": L,
        "horizon": model.args.horizon,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "predict_one_ms": statistics.median(one),
        "predict_one_p90_ms": q(one, n=10)[-1],
        "predict_1000_ms": statistics.median(many),
        "predict_1000_p90_ms": q(many, n=10)[-1],
        "per_forecast_in_batch_us": statistics.median(many) * 1e3 / 1000,
        "repeats": {"one": len(one), "batch_1000": len(many)},
        "settings": "no flush-denormal or mallopt (not our training loop), inference_mode, model.eval()",
    }


def bench_cuda(epochs: int, quick: bool, scratch: Path) -> tuple[dict[str, Any] | None, str]:
    import torch

    if not torch.cuda.is_available():
        return None, "torch.cuda.is_available() is False on this machine: no CUDA run"
    res = run_worker("ours", {"epochs": epochs, "quick": quick, "device": "cuda"}, scratch, timeout=None)
    keep = ("device", "device_name", "samples_per_second", "val_mse_final", "timed_steps", "timed_seconds")
    return {k: res[k] for k in keep}, "ours (tsforecast.train.fit) on CUDA, same data and steps as on the CPU"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    import numpy as np
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "git_commit": commit,
        "loadavg_start": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------- report


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _scores(a: dict[str, Any]) -> str:
    """One accuracy result (a worker_accuracy dict) as a line: the three test MSEs and the verdict."""
    return (
        f"LSTM {a['lstm_mse_scaled']:.4f} | repeat_last {a['repeat_last_mse_scaled']:.4f} | "
        f"seasonal_naive {a['seasonal_naive_mse_scaled']:.4f} | wins: {'yes' if a['beats_all'] else 'NO'}"
    )


def report_rows(res: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Sections of (label, value) rows: one source for the rich and the plain table."""
    sp = res["speed"]
    speed = [
        ("ours (fit) samples/s, median", _fmt(sp["ours_samples_per_second"], ".1f")),
        ("plain loop samples/s, median", _fmt(sp["plain_samples_per_second"], ".1f")),
        (
            f"speedup (target >= {TARGET_SPEEDUP}x)",
            f"{sp['speedup']:.2f}x  (per pair: {', '.join(f'{r:.2f}' for r in sp['speedup_per_pair'])})"
            + ("" if sp["meets_target"] else "  BELOW TARGET"),
        ),
        (
            "speedup by total time / by CPU time",
            f"{sp['speedup_total_time']:.2f}x / {sp['speedup_cpu_time']:.2f}x",
        ),
        (
            f"val MSE after {sp['setup']['epochs']} epochs, mean (sd) over seeds: ours / plain",
            f"{sp['ours_val_mse']:.4f} ({sp['ours_val_mse_sd']:.4f}) / "
            f"{sp['plain_val_mse']:.4f} ({sp['plain_val_mse_sd']:.4f})"
            + (
                "  (no loss)"
                if sp["no_accuracy_loss"]
                else f"  (OURS WORSE by more than {VAL_MSE_TOLERANCE - 1:.0%}: see next row)"
            ),
        ),
        (
            "val MSE, ours - plain, paired by seed: mean (se)",
            f"{sp['val_mse_paired_diff_mean']:+.4f} ({_fmt(sp['val_mse_paired_diff_se'])})",
        ),
        (
            "ours with the plain recipe: samples/s, val MSE",
            (
                f"{sp['ours_with_plain_recipe']['samples_per_second']:.1f}, "
                f"{sp['ours_with_plain_recipe']['val_mse_final']:.4f}  (run once)"
            )
            if sp.get("ours_with_plain_recipe")
            else "-",
        ),
        (
            "ablation: ours fp32, one shard: samples/s, val MSE mean (full loop, same seeds)",
            (
                f"{sp['ablation']['samples_per_second']:.1f}, {sp['ablation']['val_mse_mean']:.4f} "
                f"({sp['ablation']['val_mse_mean_full_loop_same_seeds']:.4f}), "
                f"{len(sp['ablation']['seeds'])} seeds"
            )
            if sp.get("ablation")
            else "- (--ablation)",
        ),
        (
            "peak RSS MB: ours / plain",
            f"{sp['ours_peak_rss_mb']:.0f} / {sp['plain_peak_rss_mb']:.0f}",
        ),
        (
            "steps per run: timed (+ warm-up)",
            f"{sp['timed_steps_per_run']} (+{sp['warmup_steps_per_run']}), x{sp['setup']['repetitions']} each",
        ),
    ]
    acc = []
    for h, a in sorted(res["accuracy"]["by_horizon"].items(), key=lambda kv: int(kv[0])):
        if "skipped" in a:
            acc.append((f"H={h}", f"skipped: {a['skipped']}"))
            continue
        acc.append(
            (
                f"H={h} (L={a['input_size']}, {a['epochs_run']}/{a['epochs_configured']} ep)",
                _scores(a),
            )
        )
    hp = res.get("hourly_proxy")
    if hp and "skipped" in hp:
        acc.append(("hourly proxy", f"skipped: {hp['skipped']}"))
    elif hp:
        acc.append(
            (
                f"hourly proxy (L={hp['input_size']}, H={hp['horizon']}, period {hp['seasonal_period']})",
                f"{_scores(hp)} ({hp['epochs_run']} ep, best {hp['best_epoch']})",
            )
        )
    inf = res.get("inference") or {}
    infer = (
        [
            (
                f"predict 1 window (L={inf['input_size']}, H={inf['horizon']}), ms",
                f"{inf['predict_one_ms']:.2f} (p90 {inf['predict_one_p90_ms']:.2f})",
            ),
            (
                "predict 1,000 windows (one batch), ms",
                f"{inf['predict_1000_ms']:.1f} (p90 {inf['predict_1000_p90_ms']:.1f})",
            ),
        ]
        if inf
        else [("inference", f"skipped: {res.get('inference_note', '')}")]
    )
    w = res["windowing"]
    win = [
        (
            f"{w['rows']:,} points, L={w['input_size']} H={w['horizon']}: windows",
            f"{w['n_windows']:,} (views: {_fmt(w['windows_share_memory'])})",
        ),
        (
            "peak bytes building them (tracemalloc)",
            f"{w['peak_bytes']:,} B = {w['peak_over_series']:.4f}x the series ({w['series_bytes'] / 1e6:.0f} MB)",
        ),
        ("materialised copies would take", f"{w['materialised_bytes_would_be'] / 1e9:.1f} GB"),
        (
            "gather one batch of 64",
            f"{w['batch64_peak_bytes']:,} B peak, {w['batch64_ms']:.3f} ms",
        ),
    ]
    e = res["environment"]
    env = [
        (
            "torch / threads",
            f"{e['torch_version']} / {e['torch_threads']} (interop {e['torch_interop_threads']}; "
            f"speed runs: {sp['setup']['threads']})",
        ),
        ("cpu", f"{e['cpu_model']}, {e['cpus_usable']} usable of {e['cpu_count']}"),
        ("load average start / end", f"{e['loadavg_start'][0]:.2f} / {e.get('loadavg_end', [0])[0]:.2f}"),
        ("device / cuda", f"{e['device']} / {res['cuda'] or res.get('cuda_note')}"),
        (
            "date, elapsed",
            f"{e['date']}, {res['elapsed_s']:.0f}s" + ("  (QUICK: tiny sizes)" if res["quick"] else ""),
        ),
    ]
    return [
        ("Training speed (same model, data, steps)", speed),
        (f"Accuracy: test MSE on the train-fit scale ({res['accuracy']['note']})", acc),
        ("Inference latency (CPU)", infer),
        ("Windowing memory", win),
        ("Environment", env),
    ]


def print_table(res: dict[str, Any]) -> None:
    sections = report_rows(res)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for title, rows in sections:
            print(f"\n{title}")
            width = max(len(k) for k, _ in rows)
            for k, v in rows:
                print(f"  {k:<{width}}  {v}")
        return
    console = Console(width=140)
    for title, rows in sections:
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for k, v in rows:
            table.add_row(k, v)
        console.print(table)


def write_results(res: dict[str, Any], path: Path) -> None:
    """Atomically write ``res`` as indented JSON."""
    from tsforecast.io import write_json

    write_json(path, res)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=(
            "Benchmark tsforecast: training speed of tsforecast.train.fit against a plain PyTorch "
            "loop (same model, data and steps; alternating fresh subprocesses, medians), test "
            "accuracy against repeat-last and seasonal-naive at several horizons (the full "
            "pipeline with params.yaml), inference latency, and the memory of windowing a "
            "10-million-point series. Prints a table and writes JSON."
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
    p.add_argument(
        "--reps", type=int, default=None, help="runs of each loop, one seed per pair (default 5; quick 1)"
    )
    p.add_argument(
        "--speed-epochs",
        type=int,
        default=None,
        help="epochs per speed run, the first one untimed (default 6 = 252 steps; quick 2)",
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
        default=570.0,
        help="wall-clock budget in seconds (default 570): speed pairs stop at 40%% of it, accuracy runs "
        "that would pass it are stopped and reported as skipped",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for every loop and the inference step (default: torch's own choice)",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also run ours with bf16 off and one shard at the same seeds (about a minute more): "
        "what the speed-ups cost in accuracy",
    )
    p.add_argument(
        "--hourly-proxy",
        action="store_true",
        help="also run the pipeline with only the params an hourly benchmark sets (row-count split, "
        "L=H=96, period 24) on a synthetic hourly series of that shape (about a minute more)",
    )
    p.add_argument("--keep-scratch", action="store_true", help="keep the scratch dir (worker logs, models)")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--worker-args", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def bench_accuracy(
    horizons: list[int], quick: bool, scratch: Path, deadline: float, threads: int | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Each horizon in its own subprocess; the params.yaml horizon first (inference needs it)."""
    first = INFERENCE_H if INFERENCE_H in horizons else horizons[0]
    order = [first, *[h for h in horizons if h != first]]
    by_h: dict[str, Any] = {}
    inference_model: dict[str, Any] | None = None
    reserve = 5.0 if quick else 25.0  # the inference step and the report still need time
    need = 20.0  # seconds a horizon needs at least; then 3/4 of the fastest one done
    done_s: list[float] = []
    for h in order:
        left = deadline - time.perf_counter() - reserve
        if left < need:
            fastest = f", the fastest horizon took {min(done_s):.0f}s" if done_s else ""
            by_h[str(h)] = {"skipped": f"time budget: {max(left, 0):.0f}s left{fastest}"}
            log(f"accuracy H={h}: skipped, {max(left, 0):.0f}s of the time budget left")
            continue
        log(f"accuracy H={h}: ingest -> validate -> window -> train -> evaluate (budget {left:.0f}s)")
        t = time.perf_counter()
        try:
            a = run_worker(
                "accuracy",
                {"horizon": h, "quick": quick, "threads": threads, "root": str(scratch / f"repo-H{h}")},
                scratch,
                timeout=left,
            )
        except WorkerFailed as e:
            by_h[str(h)] = {"skipped": str(e).splitlines()[0]}
            log(f"accuracy H={h}: {e}")
            continue
        by_h[str(h)] = a
        done_s.append(time.perf_counter() - t)
        need = max(20.0, 0.75 * min(done_s))
        if inference_model is None:
            inference_model = a
        log(f"accuracy H={h}: {_scores(a)} ({a['epochs_run']} epochs, {time.perf_counter() - t:.0f}s)")
    return by_h, inference_model


def bench_hourly_proxy(quick: bool, scratch: Path, deadline: float, threads: int | None) -> dict[str, Any]:
    """The pipeline with params.yaml and only the keys an hourly benchmark sets, on the synthetic
    series of bench_data.hourly_proxy_frame."""
    from bench_data import HOURLY_PROXY_PARAMS, QUICK_HOURLY_PROXY_PARAMS, hourly_proxy_frame

    root = scratch / "repo-hourly"
    csv = root / "data" / "external" / "hourly_proxy.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    hourly_proxy_frame(2000 if quick else 17_420).to_csv(csv, index=False)
    overrides = {**(QUICK_HOURLY_PROXY_PARAMS if quick else HOURLY_PROXY_PARAMS), "data.path": str(csv)}
    left = deadline - time.perf_counter()
    if left < 20:
        return {"skipped": f"time budget: {max(left, 0):.0f}s left"}
    log(
        f"hourly proxy: {'2,000' if quick else '17,420'} synthetic hourly rows, "
        f"L={overrides['window.input_size']} H={overrides['window.horizon']}, period 24"
    )
    t = time.perf_counter()
    try:
        a = run_worker(
            "accuracy",
            {"overrides": overrides, "quick": quick, "threads": threads, "root": str(root)},
            scratch,
            left,
        )
    except WorkerFailed as e:
        return {"skipped": str(e).splitlines()[0]}
    for k in ("model_path", "prepared_path"):
        a.pop(k, None)
    a["params"] = {k: v for k, v in overrides.items() if k != "data.path"}
    log(f"hourly proxy: {_scores(a)} ({a['epochs_run']} epochs, {time.perf_counter() - t:.0f}s)")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker:
        return worker_main(a.worker, a.worker_args, a.worker_out)
    quick = a.quick
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    reps = a.reps or (1 if quick else 5)
    epochs = a.speed_epochs or (2 if quick else 6)
    horizons = a.horizons or ([24] if quick else [24, 48, 96])
    deadline = T0 + a.budget_s
    scratch = Path(tempfile.mkdtemp(prefix="tsforecast-bench-"))
    log(f"scratch dir {scratch}; {'QUICK mode, ' if quick else ''}{reps} reps x {epochs} epochs")
    results: dict[str, Any] = {"quick": quick}
    try:
        env = environment()
        if env["loadavg_start"][0] > 0.5 * (env["cpus_usable"] or 1):
            log(
                f"warning: load average {env['loadavg_start'][0]:.1f} on {env['cpus_usable']} CPUs: "
                "other processes share the cores, timings will be noisy"
            )
        log("windowing: 10M-point series, tracemalloc")
        w = bench_windowing()
        log(f"windowing: peak {w['peak_bytes']:,} B for {w['n_windows']:,} windows")

        log("speed: ours vs plain loop, alternating fresh subprocesses")
        speed_deadline = T0 + (0.45 if quick else 0.4) * a.budget_s
        sp = bench_speed(reps, epochs, quick, scratch, speed_deadline, a.threads)
        log(
            f"speed: {sp['speedup']:.2f}x ({sp['ours_samples_per_second']:.0f} vs {sp['plain_samples_per_second']:.0f})"
        )

        if a.ablation:
            sp["ablation"] = bench_ablation(
                sp["runs"]["ours"], epochs, quick, scratch, T0 + 0.6 * a.budget_s, a.threads
            )

        by_h, inf_model = bench_accuracy(horizons, quick, scratch, deadline, a.threads)
        inference, inference_note = None, ""
        if inf_model is not None:
            log(f"inference: model H={inf_model['horizon']}, L={inf_model['input_size']}")
            inference = bench_inference(
                Path(inf_model["model_path"]), Path(inf_model["prepared_path"]), quick
            )
        else:
            inference_note = "no trained model: every accuracy run was skipped"
        for v in by_h.values():
            v.pop("model_path", None)
            v.pop("prepared_path", None)

        if a.hourly_proxy:
            results["hourly_proxy"] = bench_hourly_proxy(quick, scratch, deadline, a.threads)

        log("cuda: checking for a GPU")
        cuda, cuda_note = bench_cuda(epochs, quick, scratch)
        env["loadavg_end"] = list(os.getloadavg())

        results.update(
            {
                "train_samples_per_second": sp["ours_samples_per_second"],
                "plain_loop_samples_per_second": sp["plain_samples_per_second"],
                "train_speedup_vs_plain_loop": sp["speedup"],
                "peak_rss_mb": sp["ours_peak_rss_mb"],
                "predict_one_ms": inference["predict_one_ms"] if inference else None,
                "predict_1000_ms": inference["predict_1000_ms"] if inference else None,
                "windowing_peak_bytes_10m": w["peak_bytes"],
                "val_mse_ours": sp["ours_val_mse"],
                "val_mse_plain_loop": sp["plain_val_mse"],
                "speed": sp,
                "accuracy": {
                    "note": (
                        "QUICK: L=48, stride 4, 1 epoch, not a real result"
                        if quick
                        else f"params.yaml defaults, L={ACCURACY_L}, period {ACCURACY_PERIOD}"
                    ),
                    "metric": "mse_scaled over every stride-1 test window and horizon step",
                    "by_horizon": by_h,
                    "lstm_wins_all_run": all(v["beats_all"] for v in by_h.values() if "skipped" not in v),
                    "horizons_skipped": sorted(int(h) for h, v in by_h.items() if "skipped" in v),
                },
                "inference": inference,
                "windowing": w,
                "cuda": cuda,
                "cuda_note": cuda_note,
                "environment": env,
                "elapsed_s": time.perf_counter() - T0,
            }
        )
        if inference is None:
            results["inference_note"] = inference_note
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
