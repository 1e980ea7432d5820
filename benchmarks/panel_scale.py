"""Panel scale micro-benchmark: the panel building blocks at 100, 1,000 and 10,000 series.

    python benchmarks/panel_scale.py                  # table + benchmarks/panel_scale.json
    python benchmarks/panel_scale.py --sizes 100 1000 --output /tmp/x.json

Series: ``benchmarks/panel_data.py::synthetic_panel(n, length=1000)`` (hourly, M4-like level,
trend, daily and weekly cycles, AR(1) log-noise). Per size, wall time and peak memory of:

- ``build``: :func:`tsforecast.panel.build_panel` from the long frame (grouping, per-series
  split bounds, per-series train scalers, window ranges) plus the full train window index;
- ``epoch_gather``: one fixed-size epoch of :class:`tsforecast.sampling.WindowSampler`
  (``windows_per_epoch`` windows, batches of 256) gathered into (B, L, C) / (B, H) arrays,
  no training: its cost should not grow with the panel;
- ``m4_score``: seasonal naive forecasts of the last H points of every series and their M4
  scores (sMAPE, MASE, OWA vs Naive2: :func:`tsforecast.m4.panel_scores`), in-process;
- ``dask_map``: the same scoring in chunks with :func:`tsforecast.parallel.map_series` on a
  ``LocalCluster`` (2 worker processes x 1 thread), started once (``dask_startup``); its
  per-series results are checked equal to the in-process ones.

Times: ``wall_s`` is the median of ``--repeats`` timed runs (default 3), quoted with the
spread ``wall_s_min``..``wall_s_max`` and every run in ``wall_s_runs``; growth per 10x uses
the medians. Memory: ``rss_peak_mb`` is this process's resident set, sampled every 10 ms during the timed
run of the step (the workers' memory is not included); ``tracemalloc_peak_mb`` counts the
Python and numpy allocations of a second, untimed run (tracemalloc slows Python-level code). The machine is shared: the load average before and
after is recorded, so read the times as upper bounds.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `python benchmarks/panel_scale.py` from the repo root
    sys.path.insert(0, str(HERE.parent))

from benchmarks.panel_data import synthetic_panel  # noqa: E402
from tsforecast import m4  # noqa: E402
from tsforecast.config import SplitConfig, WindowConfig  # noqa: E402
from tsforecast.io import write_json  # noqa: E402
from tsforecast.panel import Panel, build_panel  # noqa: E402
from tsforecast.parallel import chunk_ranges, dask_client, map_series  # noqa: E402
from tsforecast.sampling import WindowSampler  # noqa: E402

DEFAULT_OUTPUT = HERE / "panel_scale.json"
SIZES = (100, 1_000, 10_000)
LENGTH = 1_000
L, H, M = 168, 48, 24
WINDOWS_PER_EPOCH = 32_768
BATCH = 256
SPLIT = SplitConfig(train=0.8, val=0.1, test=0.1, lookback=True)
WINDOW = WindowConfig(input_size=L, horizon=H, stride=1)
REPEATS = 3  # timed runs per step (--repeats)
STEPS = ("build", "epoch_gather", "m4_score", "dask_map")


def measure(fn: Callable[[], Any], traced: bool = True, repeat: bool = True) -> tuple[Any, dict[str, Any]]:
    """Run ``fn``: wall time and sampled RSS peak (MB); with ``repeat``, ``REPEATS`` timed runs
    in all and ``wall_s`` is their median (min, max and every run kept beside it); with
    ``traced``, one more run under tracemalloc for its allocation peak (tracemalloc slows
    Python-level code, so that run is not timed)."""
    proc = psutil.Process()
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        result = fn()
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    runs = [wall]
    for _ in range(REPEATS - 1 if repeat else 0):  # the median of several runs, never the best
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    stats: dict[str, Any] = {"rss_peak_mb": peak[0] / 2**20, "wall_s_runs": runs}
    stats["wall_s"] = float(np.median(runs))
    stats["wall_s_min"], stats["wall_s_max"] = min(runs), max(runs)
    if traced:
        tracemalloc.start()
        try:
            fn()
            stats["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
    return result, stats


def score_chunk(chunk: tuple[list[str], np.ndarray]) -> pd.DataFrame:
    """Per-series M4 scores of seasonal naive on (ids, (n, T) values): the last H points held out."""
    ids, values = chunk
    insample, actuals = values[:, :-H], values[:, -H:]
    return m4.panel_scores(actuals, m4.seasonal_naive_forecast(insample, H, M), insample, M, ids=ids)[1]


def target_block(panel: Panel) -> np.ndarray:
    """(S, T) float64 targets: every synthetic series has the same length."""
    return panel.values[:, 0].astype(np.float64).reshape(panel.n_series, -1)


def epoch_gather(panel: Panel) -> int:
    sampler = WindowSampler(panel.windows("train"), WINDOWS_PER_EPOCH, seed=0)
    n = 0
    for s, starts in sampler.batches(epoch=0, batch_size=BATCH):
        X, Y = panel.gather(s, starts)  # (B, L, C), (B, H)
        n += X.shape[0]
    return n


def build(frame: pd.DataFrame) -> Panel:
    """The panel and its full train window index."""
    panel = build_panel(
        frame, id_column="unique_id", timestamp_column="timestamp", columns=["value"],
        split=SPLIT, window=WINDOW,
    )  # fmt: skip
    panel.window_index("train")
    return panel


def run_size(n: int, client: Any) -> dict[str, Any]:
    frame = synthetic_panel(n, LENGTH, seed=0)
    row: dict[str, Any] = {"n_series": n, "n_rows": len(frame)}

    panel, row["build"] = measure(functools.partial(build, frame))
    del frame
    row["n_train_windows"] = panel.windows("train").total
    _, row["epoch_gather"] = measure(lambda: epoch_gather(panel))
    values, ids = target_block(panel), [str(i) for i in panel.ids]
    local, row["m4_score"] = measure(lambda: score_chunk((ids, values)))
    per_series = row["m4_score"]["wall_s"] / n
    ranges = chunk_ranges(n, seconds_per_item=per_series, min_chunks=4)
    chunks = [(ids[a:b], values[a:b]) for a, b in ranges]
    remote, row["dask_map"] = measure(
        lambda: map_series(score_chunk, chunks, client=client, progress=False), traced=False
    )  # repeated too: the second run finds the workers warm
    row["dask_map"]["n_chunks"] = len(chunks)
    pd.testing.assert_frame_equal(pd.concat(remote, ignore_index=True), local.reset_index(drop=True))
    return row


def growth(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Time ratio per 10x series between consecutive sizes, per step."""
    out: dict[str, dict[str, float]] = {}
    for a, b in zip(rows, rows[1:], strict=False):
        key = f"{a['n_series']}->{b['n_series']}"
        out[key] = {s: b[s]["wall_s"] / max(a[s]["wall_s"], 1e-9) for s in STEPS}
    return out


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'series':>7} " + " ".join(f"{s + ' s (min-max)':>26} {'MB':>6}" for s in STEPS)
    lines = [head, "median of the timed runs, with their min-max spread"]
    for r in rows:
        cells = " ".join(
            f"{r[s]['wall_s']:>10.3f} ({r[s]['wall_s_min']:.3f}-{r[s]['wall_s_max']:.3f}) {r[s]['rss_peak_mb']:>6.0f}"
            for s in STEPS
        )
        lines.append(f"{r['n_series']:>7} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global REPEATS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per step; the median is quoted")
    args = ap.parse_args(argv)
    REPEATS = max(1, args.repeats)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        client, startup = measure(lambda: stack.enter_context(dask_client(None)), traced=False, repeat=False)
        rows = [run_size(n, client) for n in args.sizes]
    result = {
        "sizes": rows,
        "growth_per_10x": growth(rows),
        "dask_startup": startup,
        "config": {
            "length": LENGTH,
            "input_size": L,
            "horizon": H,
            "seasonal_period": M,
            "windows_per_epoch": WINDOWS_PER_EPOCH,
            "repeats": REPEATS,
            "batch_size": BATCH,
            "split": SPLIT.model_dump(),
            "local_cluster": "2 processes x 1 thread",
        },  # fmt: skip
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "total_s": time.perf_counter() - t0,
        },
    }
    print(table(rows))
    for key, ratios in result["growth_per_10x"].items():
        print(f"growth {key}: " + ", ".join(f"{s} x{v:.2f}" for s, v in ratios.items()))
    print(
        f"dask startup {startup['wall_s']:.1f} s; load average before {load_before}, after {os.getloadavg()}"
    )
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
