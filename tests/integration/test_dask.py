"""Per-series work on Dask: a real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

The chunk functions live in ``tests/helpers/dask_tasks.py`` so workers import them by reference
(their PYTHONPATH holds this repo and its ``src``; pytest imports a test module under a
name the workers could not import).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from benchmarks.scale_data import synthetic_values
from tests.helpers.dask_cluster import dask_cluster
from tests.helpers.dask_tasks import fail_on_three, score_chunk, slow_echo, worker_pid
from tests.helpers.processes import free_port
from tsforecast import parallel
from tsforecast.errors import ConfigError
from tsforecast.parallel import DaskUnavailableError, chunk_ranges, dask_client, map_series


def panel_chunks(n_series: int = 60, length: int = 24 * 14) -> list[tuple[list[str], np.ndarray]]:
    values = synthetic_values(n_series, length, seed=11).astype(np.float64)  # (n, T)
    ids = [f"S{i}" for i in range(n_series)]
    return [(ids[a:b], values[a:b]) for a, b in chunk_ranges(n_series, seconds_per_item=0.01)]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real scheduler and two single-threaded workers; all stopped (process groups) after."""
    with dask_cluster(tmp_path_factory.mktemp("dask")) as address:
        yield address


@pytest.mark.slow
def test_m4_scores_on_a_real_scheduler_equal_the_in_process_run(scheduler: str) -> None:
    chunks = panel_chunks()
    assert 5 < len(chunks) < 60  # chunks of series, not one task per series
    local = pd.concat(map_series(score_chunk, chunks, None, in_process=True, progress=False))
    remote = pd.concat(map_series(score_chunk, chunks, scheduler, progress=False))
    pd.testing.assert_frame_equal(remote, local)
    assert list(remote["id"]) == [f"S{i}" for i in range(60)]


@pytest.mark.slow
def test_the_same_chunks_mapped_twice_in_a_row_both_succeed(scheduler: str) -> None:
    chunks = panel_chunks(30)
    from distributed import Client

    with Client(scheduler) as client:
        first = map_series(score_chunk, chunks, client=client, progress=False)
        second = map_series(score_chunk, chunks, client=client, progress=False)
    pd.testing.assert_frame_equal(pd.concat(first), pd.concat(second))


@pytest.mark.slow
def test_work_runs_in_the_worker_processes(scheduler: str) -> None:
    results = map_series(worker_pid, list(range(8)), scheduler, progress=False)
    assert [i for i, _ in results] == list(range(8))
    assert os.getpid() not in {pid for _, pid in results}


@pytest.mark.slow
def test_results_come_back_in_chunk_order_when_later_chunks_finish_first(scheduler: str) -> None:
    items = [(i, 0.4 - 0.1 * i) for i in range(4)]
    assert map_series(slow_echo, items, scheduler, progress=False) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_worker_error_reaches_the_caller_with_its_type_and_message(scheduler: str) -> None:
    with pytest.raises(ValueError, match="chunk 3 is bad"):
        map_series(fail_on_three, list(range(6)), scheduler, progress=False)


def test_an_unreachable_scheduler_is_named_with_the_fix() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(DaskUnavailableError) as info, dask_client(address, connect_timeout_s=1):
        pass
    msg = str(info.value)
    assert f"cannot reach the Dask scheduler at {address}" in msg
    assert "`dask scheduler --port" in msg and "orchestration.dask_address: null" in msg
    assert info.value.exit_code == 75


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "http://host:8786", "tcp://nohost"])
def test_an_address_that_is_not_a_scheduler_url_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError, match=r"orchestration.dask_address=.* is not a scheduler address"):
        map_series(int, ["1"], address, progress=False)


def test_small_work_without_an_address_stays_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cluster(*a: object, **k: object) -> None:
        raise AssertionError("a cluster was started for small work")

    monkeypatch.setattr(parallel, "dask_client", no_cluster)
    chunks = panel_chunks(20)
    got = pd.concat(map_series(score_chunk, chunks, None, progress=False))
    assert list(got["id"]) == [f"S{i}" for i in range(20)]


def test_chunk_ranges_cover_every_series_once_with_tasks_of_the_target_cost() -> None:
    ranges = chunk_ranges(10_000, seconds_per_item=0.002, target_s=0.05)
    assert ranges[0] == (0, 25) and ranges[-1][1] == 10_000
    assert all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:], strict=False))
    assert chunk_ranges(10, seconds_per_item=1e-6, min_chunks=2) == [(0, 5), (5, 10)]
    assert chunk_ranges(0) == []
