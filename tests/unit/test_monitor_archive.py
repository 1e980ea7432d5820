"""monitoring/archive.py: one file per delivery, never overwritten, whole or absent, prunable on request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.monitoring_fixtures import ID, H, cfg_for, delivery, series_frame
from tsforecast.io import atomic_create
from tsforecast.monitoring.archive import (
    archive_files,
    model_version_of,
    origin_of_name,
    prune,
    read_archive,
    sweep_temps,
    write,
)
from tsforecast.paths import Paths


@pytest.mark.parametrize("n_series", [1, 3])
def test_a_delivery_has_the_forecast_columns_origin_model_version_and_the_train_scale(n_series: int) -> None:
    cfg = cfg_for(n_series)
    frame = series_frame(n_series)

    rows = delivery(frame, cfg, origin_row=400, version="7")

    expected = [*([ID] if n_series > 1 else []), "timestamp", "forecast", "lo_80", "hi_80", "origin",
                "model_version", "delivered_at", "train_mean", "train_std"]  # fmt: skip
    assert list(rows.columns) == expected
    assert len(rows) == H * n_series
    assert (rows["origin"] == pd.Timestamp("2024-01-01") + pd.Timedelta(hours=400)).all()
    assert (rows["timestamp"] > rows["origin"]).all()
    assert set(rows["model_version"]) == {"7"}
    assert rows["train_std"].gt(0).all()


def test_writing_the_same_delivery_again_keeps_the_first_file_untouched(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    rows = delivery(series_frame(), cfg, origin_row=400)
    first, new = write(rows, tmp_path)
    before = (first.read_bytes(), first.stat().st_mtime_ns)

    again, new_again = write(rows.assign(delivered_at=pd.Timestamp("2030-01-01", tz="UTC")), tmp_path)

    assert new and not new_again and again == first
    assert (first.read_bytes(), first.stat().st_mtime_ns) == before
    assert archive_files(tmp_path) == [first]


def test_a_later_delivery_from_the_same_origin_is_a_new_file_not_an_overwrite(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    first, _ = write(delivery(frame, cfg, origin_row=400, version="1"), tmp_path)
    before = first.read_bytes()

    second, new = write(delivery(frame, cfg, origin_row=400, version="2"), tmp_path)

    assert new and second != first
    assert first.read_bytes() == before
    assert len(archive_files(tmp_path)) == 2


def test_an_existing_archive_file_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "20240101T000000__1__abc.parquet"
    with atomic_create(target) as fh:
        fh.write(b"first")

    with pytest.raises(FileExistsError), atomic_create(target) as fh:
        fh.write(b"second")

    assert target.read_bytes() == b"first"
    assert not list(tmp_path.glob(".*tmp*")), "the losing writer's temp file is removed"


WRITER = """
import sys, time
from tsforecast.io import atomic_create
with atomic_create(sys.argv[1]) as fh:
    fh.write(b"x" * 100_000)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_writer_killed_mid_write_leaves_no_partial_archive_file(tmp_path: Path) -> None:
    target = tmp_path / "20240101T000000__1__abc.parquet"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)

    assert not target.exists()
    assert archive_files(tmp_path) == []
    frame, bad = read_archive(tmp_path, cfg_for(1).data)
    assert frame.empty and bad == []
    temps = list(tmp_path.glob(".*.tmp-*"))
    assert len(temps) == 1, "the killed writer's hidden temp file is all that is left"
    assert sweep_temps(tmp_path, older_than_s=0) == temps and not temps[0].exists()


def test_read_archive_returns_every_file_with_the_implicit_id_and_names_unreadable_ones(
    tmp_path: Path,
) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    for row in (300, 306):
        write(delivery(frame, cfg, origin_row=row), tmp_path)
    (tmp_path / "20240102T000000__1__deadbeef.parquet").write_bytes(b"not parquet")

    rows, bad = read_archive(tmp_path, cfg.data)

    assert len(rows) == 2 * H and set(rows["series"]) == {"y"}
    assert rows["file"].nunique() == 2
    assert bad == ["20240102T000000__1__deadbeef.parquet"]


def test_prune_deletes_only_files_whose_origin_is_before_the_date(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    files = [write(delivery(frame, cfg, origin_row=row), tmp_path)[0] for row in (24, 48, 72)]
    assert [origin_of_name(f) for f in files] == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03"),
                                                   pd.Timestamp("2024-01-04")]  # fmt: skip

    would = prune(tmp_path, pd.Timestamp("2024-01-03"), dry_run=True)
    assert would == files[:1] and files[0].exists()
    gone = prune(tmp_path, pd.Timestamp("2024-01-03"))

    assert gone == files[:1]
    assert archive_files(tmp_path) == files[1:]


def test_model_version_is_the_registered_version_or_a_hash_of_the_local_file(tmp_path: Path) -> None:
    paths = Paths.from_root(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"weights")

    assert model_version_of("models:/tsforecast-lstm/12", paths) == "12"
    local = model_version_of("models/model.pt", paths)
    assert local.startswith("local-") and len(local) == len("local-") + 12
    (tmp_path / "models" / "model.pt").write_bytes(b"other weights")
    assert model_version_of("models/model.pt", paths) != local


def test_archive_names_sort_by_origin(tmp_path: Path) -> None:
    cfg = cfg_for(3)
    frame = series_frame(3)
    for row in (100, 40, 70):
        write(delivery(frame, cfg, origin_row=row), tmp_path)
        time.sleep(0.01)

    origins = [origin_of_name(p) for p in archive_files(tmp_path)]

    assert origins == sorted(origins)
