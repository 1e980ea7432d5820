"""Accuracy: the whole pipeline (ingest -> evaluate, params.yaml) at several horizons, test MSE
against the repeat-last and seasonal-naive baselines; and the hourly smoke check.

The hourly smoke check (``--hourly-proxy``) runs the pipeline with the params an hourly
benchmark would set on a SYNTHETIC series (``bench_data.hourly_proxy_frame``): it shows that
such a configuration runs end to end and how it compares with the baselines on that made-up
series. It is not a result on any public data set.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.harness import WorkerFailed, log, run_worker

INFERENCE_H = 48  # the horizon in params.yaml: the model inference latency is measured on
HOURLY_SMOKE_NOTE = (
    "smoke check, not a result: a synthetic hourly series (bench_data.hourly_proxy_frame) with an "
    "hourly benchmark's params; it shows the configuration runs end to end, nothing about real data"
)


def scores_line(a: dict[str, Any]) -> str:
    """One accuracy result (a worker_accuracy dict) as a line: the test MSEs of the LSTM and of every
    baseline it was scored against (``naive2`` where evaluate scored it), and the verdict."""
    naive2 = f"naive2 {a['naive2_mse_scaled']:.4f} | " if "naive2_mse_scaled" in a else ""
    return (
        f"LSTM {a['lstm_mse_scaled']:.4f} | repeat_last {a['repeat_last_mse_scaled']:.4f} | "
        f"seasonal_naive {a['seasonal_naive_mse_scaled']:.4f} | {naive2}"
        f"wins: {'yes' if a['beats_all'] else 'NO'}"
    )


def bench_accuracy(
    horizons: list[int], quick: bool, scratch: Path, deadline: float, threads: int | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Each horizon in its own subprocess; the params.yaml horizon first (inference needs it).
    Returns the results by horizon and the one whose model the inference step loads."""
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
        args = {"horizon": h, "quick": quick, "threads": threads, "root": str(scratch / f"repo-H{h}")}
        try:
            a = run_worker("accuracy", args, scratch, timeout=left)
        except WorkerFailed as e:
            by_h[str(h)] = {"skipped": str(e).splitlines()[0]}
            log(f"accuracy H={h}: {e}")
            continue
        by_h[str(h)] = a
        done_s.append(time.perf_counter() - t)
        need = max(20.0, 0.75 * min(done_s))
        if inference_model is None:
            inference_model = dict(a)
        log(f"accuracy H={h}: {scores_line(a)} ({a['epochs_run']} epochs, {time.perf_counter() - t:.0f}s)")
    for v in by_h.values():  # scratch paths mean nothing after the run
        v.pop("model_path", None)
        v.pop("prepared_path", None)
    return by_h, inference_model


def bench_hourly_proxy(quick: bool, scratch: Path, deadline: float, threads: int | None) -> dict[str, Any]:
    """The smoke check: params.yaml with only the keys an hourly benchmark sets, on the synthetic
    series of bench_data.hourly_proxy_frame."""
    from benchmarks.bench_data import HOURLY_PROXY_PARAMS, QUICK_HOURLY_PROXY_PARAMS, hourly_proxy_frame

    root = scratch / "repo-hourly"
    csv = root / "data" / "external" / "hourly_proxy.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    hourly_proxy_frame(2000 if quick else 17_420).to_csv(csv, index=False)
    overrides = {**(QUICK_HOURLY_PROXY_PARAMS if quick else HOURLY_PROXY_PARAMS), "data.path": str(csv)}
    params = {k: v for k, v in overrides.items() if k != "data.path"}
    left = deadline - time.perf_counter()
    if left < 20:
        return {"what": HOURLY_SMOKE_NOTE, "skipped": f"time budget: {max(left, 0):.0f}s left"}
    log(
        f"hourly smoke check (synthetic series, not a result): {'2,000' if quick else '17,420'} rows, "
        f"L={overrides['window.input_size']} H={overrides['window.horizon']}, period 24"
    )
    t = time.perf_counter()
    args = {"overrides": overrides, "quick": quick, "threads": threads, "root": str(root)}
    try:
        a = run_worker("accuracy", args, scratch, left)
    except WorkerFailed as e:
        return {"what": HOURLY_SMOKE_NOTE, "skipped": str(e).splitlines()[0]}
    for k in ("model_path", "prepared_path"):
        a.pop(k, None)
    log(f"hourly smoke check: {scores_line(a)} ({a['epochs_run']} epochs, {time.perf_counter() - t:.0f}s)")
    return {"what": HOURLY_SMOKE_NOTE, "params": params, **a}
