"""When ``map_series`` (no scheduler address) starts a local Dask cluster: enough work AND spare cores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tsforecast import parallel


@pytest.fixture
def fake_dask(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record local-cluster starts (their worker counts) instead of starting processes."""
    started: list[int] = []

    @contextlib.contextmanager
    def fake_client(address: str | None, **kw: int) -> Iterator[str]:
        assert address is None
        started.append(kw["n_workers"])
        yield "client"

    monkeypatch.setattr(parallel, "dask_client", fake_client)
    monkeypatch.setattr(parallel, "_run_on_client", lambda client, fn, chunks, bar: [fn(c) for c in chunks])
    monkeypatch.setattr(parallel, "LOCAL_CLUSTER_WORTH_S", 0.0)  # any amount of work "pays"
    return started


@pytest.mark.parametrize(("cores", "workers"), [(1, None), (2, None), (3, None), (4, 4), (16, 8)])
def test_a_local_cluster_starts_only_with_spare_cores(
    fake_dask: list[int], monkeypatch: pytest.MonkeyPatch, cores: int, workers: int | None
) -> None:
    monkeypatch.setattr(parallel, "usable_cores", lambda: cores)
    out = parallel.map_series(abs, [-1, -2, -3], progress=False)
    assert out == [1, 2, 3]
    assert fake_dask == ([] if workers is None else [workers])


def test_little_work_stays_in_process_on_any_machine(
    fake_dask: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "usable_cores", lambda: 64)
    monkeypatch.setattr(parallel, "LOCAL_CLUSTER_WORTH_S", 3600.0)
    assert parallel.map_series(abs, [-1, -2], progress=False) == [1, 2]
    assert fake_dask == []


def test_in_process_true_never_starts_a_cluster(
    fake_dask: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "usable_cores", lambda: 64)
    assert parallel.map_series(abs, [-1, -2], in_process=True, progress=False) == [1, 2]
    assert fake_dask == []


def test_usable_cores_is_positive() -> None:
    assert parallel.usable_cores() >= 1
