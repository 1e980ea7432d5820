"""What every benchmark step shares: progress logging, load sampling, fresh-subprocess workers,
and the description of the machine.

Every training run happens in a fresh interpreter (``run.py --worker NAME``), so one run's
allocator, thread and denormal state never leaks into the next, and a run that hangs can be
stopped at its time budget.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENTRY = HERE / "run.py"
T0 = time.perf_counter()

# (phase, elapsed seconds, 1/5/15-minute load averages): other engineers share the machine,
# so results.json keeps how loaded it was while each step ran
LOAD_SAMPLES: list[dict[str, Any]] = []


def log(msg: str) -> None:
    """Progress on stderr with the elapsed time, so a 10-minute run is never silent."""
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def sample_load(phase: str) -> list[float]:
    """Record the load average now, tagged with the step about to run; return it."""
    load = [round(x, 2) for x in os.getloadavg()]
    LOAD_SAMPLES.append({"phase": phase, "t_s": round(time.perf_counter() - T0, 1), "loadavg": load})
    return load


class WorkerFailed(RuntimeError):
    """A worker subprocess exited non-zero, wrote no result, or passed its time budget."""


def clean_env() -> dict[str, str]:
    """The environment a worker starts with: no inherited malloc tuning, no progress bars."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.pop("TSFORECAST_NO_MALLOPT", None)
    env["TQDM_DISABLE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_worker(name: str, args: dict[str, Any], scratch: Path, timeout: float | None) -> dict[str, Any]:
    """Run one worker of ``workers.py`` in a fresh interpreter; its logs go to a file in ``scratch``."""
    tag = f"{name}-{len(list(scratch.glob('*.log')))}"
    out, log_path = scratch / f"{tag}.json", scratch / f"{tag}.log"
    cmd = [sys.executable, str(ENTRY), "--worker", name]
    cmd += ["--worker-args", json.dumps(args), "--worker-out", str(out)]
    with open(log_path, "w") as fh:
        try:
            proc = subprocess.run(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=clean_env(), cwd=REPO, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise WorkerFailed(
                f"{name} worker passed its {timeout:.0f}s time budget and was stopped"
            ) from None
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(log_path.read_text().splitlines()[-15:])
        raise WorkerFailed(f"{name} worker failed (exit {proc.returncode}); last lines:\n{tail}")
    return json.loads(out.read_text())


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, threads, CPUs, the git commit and the load average at the start."""
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


def load_summary() -> dict[str, Any]:
    """The 1-minute load average over the run's samples: min, median, max, and every sample."""
    ones = sorted(s["loadavg"][0] for s in LOAD_SAMPLES) or [0.0]
    return {
        "loadavg_1min_min": ones[0],
        "loadavg_1min_median": statistics.median(ones),
        "loadavg_1min_max": ones[-1],
        "samples": list(LOAD_SAMPLES),
    }
