"""The ingest stage: the built-in series, CSV/Parquet reading, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tsforecast.config import DataConfig
from tsforecast.errors import DataError
from tsforecast.ingest import run_ingest
from tsforecast.io import read_json
from tsforecast.paths import RAW_FILE, RAW_META, Paths


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths.from_root(tmp_path)


def ingest(paths: Paths, name: str, content: str | bytes | None = None, **data) -> pd.DataFrame:
    """Write ``content`` to ``name`` in the repo (unless None), ingest it, return data/raw's frame."""
    if isinstance(content, bytes):
        (paths.root / name).write_bytes(content)
    elif content is not None:
        (paths.root / name).write_text(content)
    run_ingest(DataConfig(path=name, **{"target": "y", **data}), paths)
    return pd.read_parquet(paths.raw / RAW_FILE)


def ingest_error(paths: Paths, name: str, content: str | bytes | None = None, **data) -> str:
    with pytest.raises(DataError) as info:
        ingest(paths, name, content, **data)
    return str(info.value)


# ------------------------------------------------------------------ what ingest writes


def test_builtin_taylor_is_4032_half_hours_from_5_june_2000(paths):
    run_ingest(DataConfig(), paths)

    df = pd.read_parquet(paths.raw / RAW_FILE)
    assert list(df.columns) == ["timestamp", "demand"]
    assert len(df) == 4032
    assert df["timestamp"].iloc[0] == pd.Timestamp("2000-06-05 00:00")
    assert (df["timestamp"].diff().iloc[1:] == pd.Timedelta("30min")).all()
    assert df["demand"].dtype == "float64"
    meta = read_json(paths.raw / RAW_META)
    assert (meta["source"], meta["n_rows"]) == ("builtin:taylor", 4032)


def test_csv_with_iso_timestamps_is_parsed(paths):
    df = ingest(paths, "s.csv", "timestamp,y\n2000-01-01T00:00:00,1.5\n2000-01-01T01:00:00,2.5\n")

    assert pd.api.types.is_datetime64_dtype(df["timestamp"])
    assert list(df["timestamp"]) == [pd.Timestamp("2000-01-01 00:00"), pd.Timestamp("2000-01-01 01:00")]
    assert list(df["y"]) == [1.5, 2.5]
    assert read_json(paths.raw / RAW_META)["source"] == "s.csv"


def test_tz_aware_timestamps_keep_their_zone(paths):
    df = ingest(paths, "s.csv", "timestamp,y\n2000-01-01T00:00:00Z,1\n2000-01-01T01:00:00Z,2\n")

    assert str(df["timestamp"].dt.tz) == "UTC"
    assert df["timestamp"].iloc[1] == pd.Timestamp("2000-01-01 01:00", tz="UTC")


def test_parquet_source_is_read(paths):
    frame = pd.DataFrame({"timestamp": pd.date_range("2000", periods=3, freq="h"), "y": [1.0, 2.0, 3.0]})
    frame.to_parquet(paths.root / "s.parquet", index=False)

    df = ingest(paths, "s.parquet")

    pd.testing.assert_frame_equal(df, frame, check_dtype=False)


# ------------------------------------------------------------------ errors


def test_missing_file_names_the_path_and_the_builtin(paths):
    message = ingest_error(paths, "nope.csv")

    assert "data.path=" in message and "nope.csv" in message
    assert "file not found" in message and "'builtin:taylor'" in message


def test_directory_is_rejected(paths):
    (paths.root / "folder").mkdir()

    message = ingest_error(paths, "folder")

    assert "folder' is a directory; point it at one CSV or Parquet file" in message


def test_empty_file_is_rejected(paths):
    message = ingest_error(paths, "s.csv", "")

    assert message.endswith("s.csv: the file is empty; expected a CSV with a header row")


def test_header_only_file_lists_the_header(paths):
    message = ingest_error(paths, "s.csv", "timestamp,y\n")

    assert message.endswith("s.csv: has a header (['timestamp', 'y']) but no rows")


def test_unsupported_extension_is_named(paths):
    message = ingest_error(paths, "s.xlsx", "anything")

    assert "unsupported file type '.xlsx'" in message
    assert "use .csv, .tsv or .parquet" in message


def test_semicolon_delimited_csv_is_recognised(paths):
    message = ingest_error(paths, "s.csv", "timestamp;y\n2000-01-01 00:00;1\n2000-01-01 01:00;2\n")

    assert "one column 'timestamp;y' was read" in message
    assert "looks ';'-delimited" in message and "comma-separated" in message


def test_missing_timestamp_column_lists_the_columns(paths):
    message = ingest_error(paths, "s.csv", "time,y\n2000-01-01,1\n")

    assert "column 'timestamp' not found; columns are ['time', 'y']" in message
    assert "data.timestamp_column" in message


def test_unparseable_timestamps_are_named(paths):
    content = "timestamp,y\n2000-01-01 00:00,1\nnot a date,2\n2000-13-45,3\n"

    message = ingest_error(paths, "s.csv", content)

    assert "column 'timestamp' has unparseable timestamps ['not a date', '2000-13-45']" in message
    assert "ISO 8601" in message


def test_mixed_time_zones_are_rejected_naming_the_offsets(paths):
    content = "timestamp,y\n2000-01-01T00:00:00+00:00,1\n2000-01-01T01:00:00+02:00,2\n"

    message = ingest_error(paths, "s.csv", content)

    assert "column 'timestamp' mixes time zones (offsets seen: ['+00:00', '+02:00'])" in message
    assert "convert every timestamp to one zone" in message


def test_an_ingest_error_keeps_the_previous_raw_data(paths):
    ingest(paths, "good.csv", "timestamp,y\n2000-01-01T00:00:00,1\n2000-01-01T01:00:00,2\n")
    before = {p.name: p.read_bytes() for p in paths.raw.iterdir()}

    ingest_error(paths, "bad.csv", "timestamp,y\nnot a date,1\n")

    assert {p.name: p.read_bytes() for p in paths.raw.iterdir()} == before
