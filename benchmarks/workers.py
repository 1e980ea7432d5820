"""The subprocess workers: our training loop, the plain loop, the pipeline for accuracy, windowing.

Each runs in a fresh interpreter (``run.py --worker NAME --worker-args JSON --worker-out PATH``,
started by :func:`harness.run_worker`) and writes one JSON dict.

Both training loops get the same process-wide CPU settings before they train:
flush-denormal and the allocator thresholds (``tsforecast.training.train.fast_cpu_math``, as
``run_train`` calls it), so the speed comparison measures the loops, not those settings.

Beyond ``build_model`` (``plain_loop.py``) and ``val_index`` (``bench_data.py``), this is the only
module that imports ``tsforecast.training``; if names there move, the imports below are the ones
to change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import REPO, cpu_model
from tsforecast.stages import NAMES

ACCURACY_L = 336  # a week of half-hours
ACCURACY_PERIOD = 336
PIPELINE_STAGES = NAMES[: NAMES.index("evaluate") + 1]  # ingest .. evaluate, from the stage table


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


def cpu_settings() -> dict[str, bool]:
    """Flush denormals and tune the allocator, as ``run_train`` does; say what took."""
    import torch

    from tsforecast.training.step import fast_cpu_math, tune_allocator

    fast_cpu_math()
    return {
        "flush_denormal": bool(torch.set_flush_denormal(True)),  # True where the CPU supports it
        "allocator_tuned": tune_allocator(),  # idempotent: reports whether mallopt took
    }


def timed_summary(
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
    """Our loop: tsforecast.training.train.fit, after the CPU settings run_train applies."""
    import torch

    from benchmarks.bench_data import CONTRACT_SHAPE, speed_setup
    from tsforecast.training.inference import cpu_has_native_bf16
    from tsforecast.training.step import cpu_shards
    from tsforecast.training.train import fit

    recipe = args.get("recipe", "params")
    shape = args.get("shape", CONTRACT_SHAPE)
    plain_math = bool(args.get("fp32_unsharded"))  # the ablation: our loop without its two speed-ups
    if plain_math:
        os.environ["TSFORECAST_CPU_BF16"] = "0"
    extra = {"train.cpu_shards": 1} if plain_math else None
    setup = speed_setup(args["epochs"], args["quick"], recipe, args.get("seed"), extra, shape)
    device = torch.device(args.get("device", "cpu"))
    settings = cpu_settings()
    rss_before, ru = _rss_mb(), _rusage()
    _, info = fit(setup.cfg, setup.panel, device, progress=False)
    ru = _rusage_delta(ru)
    if (info["windows_per_epoch"], info["n_val_windows"]) != (len(setup.train_index), len(setup.val_index)):
        raise RuntimeError(
            f"fit() trained on {info['windows_per_epoch']} windows an epoch and validated on "
            f"{info['n_val_windows']}; the plain loop uses {len(setup.train_index)} and {len(setup.val_index)}"
        )
    out = timed_summary(info["history"], info["windows_per_epoch"], setup.cfg.train.batch_size, ru)
    out.update(
        loop="ours",
        sample_by=info["sample_by"],
        shape=shape,
        recipe=recipe,
        fp32_unsharded=plain_math,
        seed=setup.cfg.train.seed,
        cpu_shards=cpu_shards(setup.cfg.train, device),
        cpu_bf16=device.type == "cpu" and cpu_has_native_bf16(),
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
        threads=torch.get_num_threads(),
        rss_before_train_mb=rss_before,
        peak_rss_mb=_peak_rss_mb(),
        **settings,
    )
    return out


def worker_plain(args: dict[str, Any]) -> dict[str, Any]:
    """The plain loop: DataLoader over materialised windows, default Adam, MSE; same CPU settings."""
    import torch

    from benchmarks.bench_data import CONTRACT_SHAPE, speed_setup
    from benchmarks.plain_loop import train_plain

    shape = args.get("shape", CONTRACT_SHAPE)
    setup = speed_setup(args["epochs"], args["quick"], seed=args.get("seed"), shape=shape)
    settings = cpu_settings()
    rss_before, ru = _rss_mb(), _rusage()
    info = train_plain(setup)
    ru = _rusage_delta(ru)
    out = timed_summary(info["history"], info["n_train_windows"], setup.cfg.train.batch_size, ru)
    out.update(
        loop="plain",
        shape=shape,
        seed=setup.cfg.train.seed,
        device="cpu",
        threads=torch.get_num_threads(),
        rss_before_train_mb=rss_before,
        peak_rss_mb=_peak_rss_mb(),
        **settings,
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


def _run_stages(root: Path) -> dict[str, float]:
    """ingest -> evaluate through the CLI's entry point (what DVC calls), in-process; seconds each."""
    import time

    from tsforecast.cli import main as cli_main

    stage_s: dict[str, float] = {}
    for name in PIPELINE_STAGES:
        t = time.perf_counter()
        rc = cli_main([name, "--root", str(root)])
        if rc != 0:
            raise RuntimeError(f"`tsforecast {name} --root {root}` exited {rc}; its error is above")
        stage_s[name] = round(time.perf_counter() - t, 2)
    return stage_s


def worker_accuracy(args: dict[str, Any]) -> dict[str, Any]:
    """The whole pipeline, ingest to evaluate, in a scratch repo dir; test metrics back."""
    import yaml

    from tsforecast.config import load_config
    from tsforecast.io import read_json
    from tsforecast.paths import Paths

    root = Path(args["root"])
    overrides = args.get("overrides") or accuracy_overrides(args["horizon"], args["quick"])
    cfg = load_config(REPO / "params.yaml", overrides)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    paths = Paths.from_root(root)
    stage_s = _run_stages(root)
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
        # every baseline evaluate scored (naive2 too, since every data set is a panel), and the two
        # that results.json has always quoted under their own keys
        **{f"{name}_mse_scaled": base[name]["mse_scaled"] for name in base},
        "repeat_last_mse_scaled": base["repeat_last"]["mse_scaled"],
        "seasonal_naive_mse_scaled": base["seasonal_naive"]["mse_scaled"],
        "lstm_mase": ev["mase"],
        "seasonal_naive_mase": base["seasonal_naive"]["mase"],
        "beats": ev["beats"],
        "beats_all": all(ev["beats"].values()),  # every baseline in ``beats``
        "train_samples_per_second": tr["samples_per_second"],
        "stage_seconds": stage_s,
        "model_path": str(paths.models / "model.pt"),
        "prepared_path": str(paths.prepared),
    }


def worker_windowing(args: dict[str, Any]) -> dict[str, Any]:
    """The windowing memory of a 10M-point panel of one, in its own process: building that panel
    peaks near 900 MB, and a parent's ``ru_maxrss`` carries over into every worker it starts
    afterwards (Linux keeps it across fork + exec), which would inflate their ``peak_rss_mb``."""
    from benchmarks.micro import WINDOWING_ROWS, bench_windowing

    return bench_windowing(args.get("rows", WINDOWING_ROWS))


WORKERS = {
    "ours": worker_ours,
    "plain": worker_plain,
    "accuracy": worker_accuracy,
    "windowing": worker_windowing,
}


def worker_main(name: str, raw_args: str, out_path: str) -> int:
    """Run worker ``name`` with its JSON args; write its result to ``out_path``."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    args = json.loads(raw_args)
    if args.get("threads"):
        torch.set_num_threads(args["threads"])
    result = WORKERS[name](args)
    Path(out_path).write_text(json.dumps(result))
    return 0
