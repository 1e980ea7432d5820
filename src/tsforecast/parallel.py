"""Per-series work on Dask: a client for ``orchestration.dask_address`` and an ordered chunk map.

``address=None`` runs in this process while the work is small (the first chunk is timed and
the rest extrapolated) and otherwise on a ``LocalCluster`` of two single-threaded worker
processes; ``"tcp://host:port"`` uses an existing scheduler. Work is sent as *chunks* of
series (one task per chunk, sized to run ~10-100 ms: see :func:`chunk_ranges`), never one
task per series, and results come back in chunk order whatever order the workers finish in.

Workers elsewhere need the same code and data as this process: install the package (the
same ``requirements/constraints.txt``) on every worker host, and send data inside the chunks
(it is scattered to the workers) or let the workers read it from the DVC remote, as the GPU
hand-off does. ``fn`` must be importable there (a module-level function of the package, or a
``functools.partial`` of one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from tsforecast.config import OrchestrationConfig, scheduler_address_problem
from tsforecast.errors import ConfigError, TransientError
from tsforecast.progress import progress_bar

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

LOCAL_CLUSTER_WORTH_S = 5.0  # below this much estimated work, a local cluster costs more than it saves
# fewer usable cores than this: a local cluster adds process starts (each worker imports torch)
# and memory but no compute, since the stage's own process already keeps every core busy
# (measured in benchmarks/scale.py: forecast of 10,000 series, 7.3 s in-process vs
# 15-17 s with a 2-worker local cluster on 2 cores)
MIN_CORES_FOR_LOCAL_CLUSTER = 4
MAX_LOCAL_WORKERS = 8
TARGET_TASK_S = 0.05  # one task's run time we aim at: big enough to hide scheduling overhead


class DaskUnavailableError(TransientError):
    """The Dask scheduler at ``orchestration.dask_address`` could not be reached.

    Transient: the CLI exits 75 (EX_TEMPFAIL) for it, and the Prefect flows retry it.
    """

    exit_code = 75


def check_address(address: str | None) -> str | None:
    """``address`` if it is None or a scheduler URL (tcp://host:port), else a ConfigError."""
    problem = scheduler_address_problem(address)
    if problem:
        raise ConfigError(f"orchestration.dask_address={problem}")
    return address


@contextlib.contextmanager
def dask_client(
    address: str | None, *, connect_timeout_s: float = 10.0, n_workers: int = 2
) -> Iterator[Client]:
    """A ``distributed.Client``: to the scheduler at ``address``, or to a ``LocalCluster`` when None.

    The local cluster has ``n_workers`` processes of one thread each and no dashboard; it is
    closed on exit. An unreachable scheduler raises :class:`DaskUnavailableError` naming it.
    """
    from distributed import Client, LocalCluster

    address = check_address(address)
    if address is None:
        with (
            LocalCluster(
                processes=True, n_workers=n_workers, threads_per_worker=1, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(address, timeout=f"{connect_timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise DaskUnavailableError(
            f"cannot reach the Dask scheduler at {address} within {connect_timeout_s:g} s ({exc}); "
            f"start one (`dask scheduler --port {address.rsplit(':', 1)[-1]}` and `dask worker {address}`) "
            "or set orchestration.dask_address: null to run on this machine"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def chunk_ranges(
    n_items: int,
    seconds_per_item: float | None = None,
    *,
    target_s: float = TARGET_TASK_S,
    min_chunks: int = 1,
) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``n_items`` series, each about ``target_s`` of work.

    ``seconds_per_item``: a measured cost per series (time one small chunk in-process); None
    assumes 1 ms. ``min_chunks`` caps the chunk size so that every worker gets work.
    """
    if n_items < 0:
        raise ValueError(f"n_items={n_items} must be >= 0")
    if n_items == 0:
        return []
    per = 1e-3 if seconds_per_item is None else max(float(seconds_per_item), 1e-9)
    size = max(1, int(target_s / per))
    size = min(size, -(-n_items // max(1, min_chunks)))
    return [(a, min(a + size, n_items)) for a in range(0, n_items, size)]


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return progress_bar(None, total=total, desc=desc, unit="chunk", leave=False, disable=not progress)


def _run_on_client(client: Client, fn: Callable[[T], R], chunks: Sequence[T], bar: tqdm) -> list[R]:
    """Scatter ``chunks``, map ``fn`` over them on ``client``; results in chunk order."""
    from distributed import as_completed

    if not chunks:
        return []
    # hash=False: fresh keys per call; with content hashes a repeated call can reuse keys that
    # the previous call's futures are releasing, and its tasks fail with "lost dependencies"
    data = client.scatter(list(chunks), hash=False)
    futures = client.map(fn, data, pure=False)  # pure=False: no token hashing of the arguments
    where = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        for fut in as_completed(futures):
            results[where[fut.key]] = fut.result()  # re-raises the worker's exception as is
            bar.update(1)
    except BaseException:
        client.cancel(futures)
        raise
    return results


def map_series(
    fn: Callable[[T], R],
    chunks: Sequence[T],
    address: str | None = None,
    *,
    in_process: bool | None = None,
    client: Client | None = None,
    desc: str = "series chunks",
    progress: bool = True,
) -> list[R]:
    """``[fn(c) for c in chunks]``, on Dask when it pays; results in the order of ``chunks``.

    ``fn`` must be pure (same chunk, same result) and picklable by reference. ``client``
    reuses an open client (``address`` is then ignored). With ``address=None`` and
    ``in_process=None`` the first chunk runs here and is timed; if the rest would take under
    ``LOCAL_CLUSTER_WORTH_S``, or the machine has fewer than ``MIN_CORES_FOR_LOCAL_CLUSTER``
    usable cores, it runs here too, else on a local cluster of one single-threaded worker per
    core (at most ``MAX_LOCAL_WORKERS``). ``in_process=True`` never uses Dask.
    """
    check_address(address)
    chunks = list(chunks)
    bar = _bar(len(chunks), desc, progress)
    with bar:
        if client is not None:
            return _run_on_client(client, fn, chunks, bar)
        if address is not None and not in_process:
            with dask_client(address) as c:
                return _run_on_client(c, fn, chunks, bar)
        done: list[R] = []
        if in_process is None and chunks:
            t0 = time.perf_counter()
            done.append(fn(chunks[0]))
            bar.update(1)
            estimate = (time.perf_counter() - t0) * (len(chunks) - 1)
            cores = usable_cores()
            if estimate >= LOCAL_CLUSTER_WORTH_S and cores >= MIN_CORES_FOR_LOCAL_CLUSTER:
                workers = min(cores, MAX_LOCAL_WORKERS)
                log.info(
                    "map_series: ~%.0f s of work left, starting a local Dask cluster of %d workers",
                    estimate,
                    workers,
                )
                with dask_client(None, n_workers=workers) as c:
                    return done + _run_on_client(c, fn, chunks[1:], bar)
        for chunk in chunks[len(done) :]:
            done.append(fn(chunk))
            bar.update(1)
        return done


# ---------------------------------------------------------------------------- execution settings: where the work runs, never what it computes
# Execution settings: where the work runs, never what it computes.
#
# The ``orchestration`` section of params.yaml (the Dask scheduler of a panel's per-series work,
# the Prefect work pool of training) changes no number a stage writes. So it is in no stage's
# DVC ``params:`` (pointing a run at a cluster, or back, re-runs nothing and leaves ``dvc status``
# clean), and an environment variable may override it for one run or one machine:
#
#     TSFORECAST_DASK_ADDRESS=tcp://10.0.0.5:8786 dvc repro    # this run's per-series work on that cluster
#     TSFORECAST_DASK_ADDRESS=null dvc repro                   # this machine, whatever params.yaml says
#
# The stage table (:mod:`tsforecast.stages`, which names these sections: ``EXECUTION_SECTIONS``)
# passes the resolved section to the stage functions that take it.
#: Overrides ``orchestration.dask_address``: ``tcp://host:port``, or ``null`` / empty for this machine.
DASK_ADDRESS_ENV = "TSFORECAST_DASK_ADDRESS"
LOCAL_WORDS = frozenset({"", "null", "none", "local"})


def dask_address_override(environ: Mapping[str, str] | None = None) -> tuple[bool, str | None]:
    """``(set, address)`` from :data:`DASK_ADDRESS_ENV`; a value that is no scheduler URL is a ConfigError."""
    env = os.environ if environ is None else environ
    if DASK_ADDRESS_ENV not in env:
        return False, None
    text = env[DASK_ADDRESS_ENV].strip()
    address = None if text.lower() in LOCAL_WORDS else text
    problem = scheduler_address_problem(address)
    if problem:
        raise ConfigError(f"{DASK_ADDRESS_ENV}={problem}")
    return True, address


def resolve_orchestration(
    orchestration: OrchestrationConfig, environ: Mapping[str, str] | None = None
) -> OrchestrationConfig:
    """``orchestration`` with the environment's overrides applied (params.yaml's values otherwise)."""
    is_set, address = dask_address_override(environ)
    if not is_set or address == orchestration.dask_address:
        return orchestration
    return orchestration.model_copy(update={"dask_address": address})


__all__ = [
    "DASK_ADDRESS_ENV",
    "DaskUnavailableError",
    "LOCAL_CLUSTER_WORTH_S",
    "MIN_CORES_FOR_LOCAL_CLUSTER",
    "check_address",
    "chunk_ranges",
    "dask_address_override",
    "dask_client",
    "map_series",
    "resolve_orchestration",
    "usable_cores",
]
