"""Micro measurements: inference latency (one window, 1,000 windows), the memory of windowing a
10-million-point series, and the peak RSS of a training process."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

WINDOWING_ROWS = 10_000_000
WINDOWING_L, WINDOWING_H = 336, 48


def bench_windowing(rows: int = WINDOWING_ROWS) -> dict[str, Any]:
    """Peak bytes numpy allocates (tracemalloc) while building every window of a long series."""
    import numpy as np

    from tsforecast.dataset.window import sliding_windows

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

    from tsforecast.dataset.window import load_prepared
    from tsforecast.training.model import load_model

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


def peak_rss(speed_by_shape: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The largest ``ru_maxrss`` of any training subprocess of each loop, over every shape."""
    ours = {shape: s["ours_peak_rss_mb"] for shape, s in speed_by_shape.items()}
    plain = {shape: s["plain_peak_rss_mb"] for shape, s in speed_by_shape.items()}
    return {
        "ours_mb": max(ours.values()),
        "plain_mb": max(plain.values()),
        "ours_by_shape_mb": ours,
        "plain_by_shape_mb": plain,
        "what": "peak RSS (ru_maxrss) of a training subprocess, the largest over its runs; includes "
        "the interpreter, torch, pandas and pmdarima (speed.shapes.*.runs.*.rss_before_train_mb)",
    }
