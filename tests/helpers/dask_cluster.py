"""A real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, for the Dask tests.

Workers import the package and the test chunk functions by reference: their PYTHONPATH holds
this repo and its ``src``. Everything started is stopped (process groups) on exit, and the
exit checks that no Dask process is left running.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers.processes import free_port, start_in_own_session, stop_process_group, tail

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def executed_counts(address: str) -> dict[str, int]:
    """Tasks each worker of the scheduler at ``address`` has run so far (worker address -> count)."""
    from distributed import Client

    with Client(address, timeout="10s") as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


@contextlib.contextmanager
def dask_cluster(tmp: Path, n_workers: int = 2) -> Iterator[str]:
    """Start a scheduler and ``n_workers`` single-threaded workers; yield the scheduler's address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    procs = [
        start_in_own_session(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env, cwd=tmp, log=tmp / "scheduler.log",
        )
    ]  # fmt: skip
    try:
        for i in range(n_workers):
            procs.append(
                start_in_own_session(
                    [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                     "--local-directory", str(tmp / f"w{i}")],
                    env=env, cwd=tmp, log=tmp / f"worker{i}.log",
                )
            )  # fmt: skip
        from distributed import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(n_workers, timeout=120)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    names = ["scheduler.log", *(f"worker{i}.log" for i in range(n_workers))]
                    logs = "\n".join(tail(tmp / f) for f in names)
                    pytest.fail(f"Dask cluster at {address} did not come up:\n{logs}")
                time.sleep(1)
        yield address
    finally:
        pids = []
        for p in reversed(procs):
            pids += (
                [c.pid for c in psutil.Process(p.pid).children(recursive=True)] if p.poll() is None else []
            )
            pids.append(p.pid)
            stop_process_group(p)
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        assert not alive, f"Dask processes left running: {alive}"
