"""Micro measurements: inference latency (one window, 1,000 windows), the memory of windowing a
10-million-point series (a panel of one), and the peak RSS of a training process."""

from __future__ import annotations

import statistics
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsforecast.dataset.panel import Panel

WINDOWING_ROWS = 10_000_000
WINDOWING_L, WINDOWING_H = 336, 48
WINDOWING_BATCH = 64


def windowing_panel(rows: int = WINDOWING_ROWS) -> Panel:
    """``rows`` standard-normal float32 values, half-hourly, as a panel of one: params.yaml's split,
    L=336, H=48, stride 1 (built as the window stage builds it)."""
    import numpy as np
    import pandas as pd

    from benchmarks.bench_data import PARAMS, one_series_panel
    from tsforecast.config import load_config

    cfg = load_config(
        PARAMS, {"window.input_size": WINDOWING_L, "window.horizon": WINDOWING_H, "window.stride": 1}
    )
    values = np.random.default_rng(0).standard_normal(rows, dtype=np.float32)  # (rows,)
    stamps = pd.date_range("2000-01-01", periods=rows, freq="30min")
    frame = pd.DataFrame({cfg.data.timestamp_column: stamps, cfg.data.target: values}, copy=False)
    return one_series_panel(frame, cfg, "30min")


def bench_windowing(rows: int = WINDOWING_ROWS) -> dict[str, Any]:
    """Peak bytes allocated (tracemalloc) by the panel's windowing of a long series.

    Built first, outside the measurement: the panel (the raw series, its split and scaler). Then,
    measured, the windowing calls ``fit`` makes before its first batch, all kept alive: the windows of every part
    (``Panel.windows``: per-series ranges, never one object per window), the index of every val
    window (``Panel.window_index("val")``, (K, 2) int64: what validation starts from), and one
    batch of 64 train windows drawn by the sampler and gathered (``Panel.gather``: the one copy
    a batch needs). ``peak_bytes`` is the peak over all three; each step's own peak is kept.
    """
    import numpy as np

    from tsforecast.dataset.panel import PARTS
    from tsforecast.dataset.sampling import WindowSampler

    t = time.perf_counter()
    panel = windowing_panel(rows)
    panel_s = time.perf_counter() - t
    steps: dict[str, dict[str, float]] = {}
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        session_peak = 0

        def measured(name: str, run: Any) -> Any:
            """Run ``run()``; record its own peak, what it keeps, its time and the session's peak."""
            nonlocal session_peak
            tracemalloc.reset_peak()
            before, t = tracemalloc.get_traced_memory()[0], time.perf_counter()
            out = run()
            ms = (time.perf_counter() - t) * 1e3
            now, peak = tracemalloc.get_traced_memory()
            steps[name] = {"peak_bytes": peak - before, "kept_bytes": now - before, "ms": ms}
            session_peak = max(session_peak, peak - base)
            return out

        ranges = measured("windows", lambda: {part: panel.windows(part) for part in PARTS})  # (S,) ranges
        val = measured("val_window_index", lambda: panel.window_index("val"))  # (K_val, 2) int64

        def first_batch() -> tuple[np.ndarray, np.ndarray]:
            sampler = WindowSampler(ranges["train"], 16_384, seed=0)
            series_idx, starts = next(iter(sampler.batches(0, WINDOWING_BATCH)))
            return panel.gather(series_idx, starts)  # (64, L, 1), (64, H): scaled copies of 64 windows

        xb, yb = measured("batch64", first_batch)
    finally:
        tracemalloc.stop()
    n_windows = {part: r.total for part, r in ranges.items()}
    total = sum(n_windows.values())
    return {
        "what": "a panel of one 10M-point series (params.yaml's split): Panel.windows of every part, "
        "Panel.window_index of the val part, Panel.gather of a batch of 64 sampled train windows; "
        "tracemalloc peak over the three, the panel itself built before",
        "rows": rows,
        "input_size": WINDOWING_L,
        "horizon": WINDOWING_H,
        "n_windows": total,
        "n_windows_by_part": n_windows,
        "series_bytes": int(panel.values.nbytes),
        "peak_bytes": int(session_peak),
        "peak_over_series": session_peak / panel.values.nbytes,
        "materialised_bytes_would_be": total * (WINDOWING_L + WINDOWING_H) * 4,
        "steps": steps,
        "windows_bytes": int(steps["windows"]["peak_bytes"]),
        "val_index_bytes": int(val.nbytes),
        "batch64_peak_bytes": int(steps["batch64"]["peak_bytes"]),
        "batch64_bytes": int(xb.nbytes + yb.nbytes),
        "batch64_ms": steps["batch64"]["ms"],
        "panel_build_s": panel_s,
    }


def bench_inference(model_path: Path, prepared_path: Path, quick: bool) -> dict[str, Any]:
    """Median latency of one forecast and of 1,000 (one batch), CPU, inference_mode."""
    import numpy as np
    import torch

    from tsforecast.dataset.panel import PARTS, load_panel
    from tsforecast.training.model import load_model

    model, _ = load_model(model_path)
    model.eval()
    panel = load_panel(prepared_path)
    L = panel.input_size
    every = np.concatenate([panel.window_index(part) for part in PARTS])  # (K, 2) (series, start)
    first_test = panel.window_index("test")[:1]  # (1, 2)
    x1 = torch.from_numpy(panel.gather(first_test[:, 0], first_test[:, 1])[0])  # (1, L, C): first test input
    pick = every[np.linspace(0, len(every) - 1, 1000).round().astype("int64")]  # (1000, 2), spread out
    x1000 = torch.from_numpy(panel.gather(pick[:, 0], pick[:, 1])[0])  # (1000, L, C)
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
