"""Real servers on 127.0.0.1 for the end-to-end tests, started and stopped by fixtures.

Each server is its own process session, so a fixture stops it and all its children by
process group, also when the test fails. Fixtures here are self-contained: ``prefect_server``
and ``prefect_worker`` for Prefect.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.processes import free_port, start_in_own_session, stop_process_group, tail

BIN = Path(sys.executable).parent
PREFECT_FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@dataclass
class PrefectServer:
    """A ``prefect server start`` on 127.0.0.1 with its own PREFECT_HOME and database."""

    url: str
    home: Path
    log: Path
    env: dict[str, str]
    process: subprocess.Popen
    workers: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 180, check: bool = True):
        """Run ``prefect <args>`` against this server; returns the CompletedProcess."""
        proc = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def api(self, method: str, path: str, json: Any = None) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", json=json, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def start_worker(self, pool: str, repo: Path, *, name: str, env: dict[str, str] | None = None) -> Path:
        """``prefect worker start --pool <pool>`` for checkout ``repo`` (TSFORECAST_REPO); returns its log."""
        log = self.home / f"worker-{name}.log"
        worker_env = {**self.env, "TSFORECAST_REPO": str(repo), **(env or {})}
        args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--name", name, "--limit", "1"]
        proc = start_in_own_session(args, env=worker_env, cwd=repo, log=log)
        self.workers.append((proc, log))
        return log

    def stop_workers(self) -> None:
        while self.workers:
            stop_process_group(self.workers.pop()[0])

    def wait_for_flow_run(
        self, flow_run_id: str, timeout: float, logs: Sequence[Path] = ()
    ) -> dict[str, Any]:
        """Poll until the flow run reaches a final state; fail with the worker logs on timeout."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            run = self.api("GET", f"/flow_runs/{flow_run_id}")
            if (run.get("state") or {}).get("type") in PREFECT_FINAL_STATES:
                return run
            for proc, log in self.workers:
                if proc.poll() is not None:
                    raise AssertionError(f"worker exited {proc.returncode}:\n{tail(log)}")
            time.sleep(2)
        shown = "\n\n".join(f"--- {log.name}\n{tail(log)}" for log in logs)
        raise AssertionError(
            f"flow run {flow_run_id} still {run.get('state_type')} after {timeout:g} s\n{shown}"
        )


def prefect_env(home: Path, api_url: str) -> dict[str, str]:
    """This environment without the caller's PREFECT_*/MLFLOW_* settings, pointed at one server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    env.update(
        PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]),
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",  # no internet: telemetry would only fail
        PREFECT_WORKER_QUERY_SECONDS="2",  # workers poll every 10 s by default
        DVC_NO_ANALYTICS="1",
    )
    return env


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real ``prefect server start --host 127.0.0.1 --port <free>``; ready when /api/health answers."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = prefect_env(home, f"{url}/api")
    log = home / "server.log"
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"]
    proc = start_in_own_session(args, env=server_env, cwd=home, log=log)
    server = PrefectServer(url=url, home=home, log=log, env=env, process=proc)
    try:
        deadline = time.monotonic() + 90  # ~11 s on a fresh database
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited {proc.returncode}:\n{tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server not healthy after 90 s:\n{tail(log)}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop_workers()
        stop_process_group(proc)


@pytest.fixture
def prefect_worker(prefect_server: PrefectServer) -> Iterator[Callable[..., Path]]:
    """``prefect_worker("cpu", repo, name="cpu-1")`` starts a worker on ``prefect_server`` for
    checkout ``repo`` and returns its log; every worker is stopped when the test ends."""
    yield prefect_server.start_worker
    prefect_server.stop_workers()
