"""The ingest stage: the built-in series, CSV/Parquet reading, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tsforecast.config import DataConfig
from tsforecast.data.ingest import read_source, run_ingest
from tsforecast.errors import DataError
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


# ------------------------------------------------------------------ a panel (data.id_column)

M4 = {"path": "builtin:m4-hourly", "id_column": "unique_id", "target": "value"}


def test_builtin_m4_hourly_is_414_series_of_700_to_960_hours_from_a_fixed_origin(paths):
    result = run_ingest(DataConfig(**M4), paths)

    df = pd.read_parquet(paths.raw / RAW_FILE)
    assert list(df.columns) == ["unique_id", "timestamp", "value"] and result.n_rows == len(df)
    lengths = df.groupby("unique_id", sort=False).size()
    assert len(lengths) == 414 and (lengths.min(), lengths.max()) == (700, 960)
    assert list(lengths.index[:3]) == ["H1", "H2", "H3"] and pd.api.types.is_string_dtype(df["unique_id"])
    firsts = df.groupby("unique_id", sort=False)["timestamp"].first()
    assert (firsts == pd.Timestamp("2000-01-01 00:00")).all()
    assert (df.groupby("unique_id")["timestamp"].diff().dropna() == pd.Timedelta("1h")).all()
    meta = read_json(paths.raw / RAW_META)
    assert (meta["source"], meta["source_sha256"], meta["n_series"]) == ("builtin:m4-hourly", None, 414)
    assert meta["id_column"] == "unique_id"


@pytest.mark.parametrize(
    ("data", "settings"),
    [
        ({}, "add -S data.id_column=unique_id -S data.target=value (or"),
        ({"target": "value"}, "add -S data.id_column=unique_id (or"),
        ({"id_column": "unique_id"}, "add -S data.target=value (or"),
        (
            {"id_column": "sid", "target": "value", "covariates": ["x"]},
            "-S data.id_column=unique_id -S 'data.covariates=[]'",
        ),
    ],
)
def test_builtin_m4_hourly_with_other_columns_says_which_settings_to_add(paths, data, settings):
    with pytest.raises(DataError) as info:
        run_ingest(DataConfig(path="builtin:m4-hourly", **data), paths)

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("data.path='builtin:m4-hourly' is a panel of 414 series with columns")
    assert settings in message


def test_builtin_taylor_with_an_id_column_is_refused(paths):
    with pytest.raises(DataError, match=r"'builtin:taylor' is one series .* id_column='sid'"):
        run_ingest(DataConfig(id_column="sid"), paths)


def test_long_csv_keeps_its_id_column_as_text(paths):
    content = "sid,timestamp,y\n7,2000-01-01 00:00,1\n7,2000-01-01 01:00,2\n12,2000-01-01 00:00,3\n"

    df = ingest(paths, "panel.csv", content, id_column="sid")

    assert df["sid"].tolist() == ["7", "7", "12"] and pd.api.types.is_string_dtype(df["sid"])
    assert df["y"].tolist() == [1, 2, 3]
    meta = read_json(paths.raw / RAW_META)
    assert (meta["id_column"], meta["n_series"]) == ("sid", 2)


def test_categorical_parquet_ids_stay_categorical(paths):
    frame = pd.DataFrame(
        {
            "sid": pd.Categorical(["b", "b", "a"]),
            "timestamp": pd.date_range("2000", periods=3, freq="h"),
            "y": [1.0, 2.0, 3.0],
        }
    )
    frame.to_parquet(paths.root / "panel.parquet", index=False)

    df = ingest(paths, "panel.parquet", id_column="sid")

    assert isinstance(df["sid"].dtype, pd.CategoricalDtype)
    assert df["sid"].astype(str).tolist() == ["b", "b", "a"]


def test_missing_id_column_lists_the_columns_and_the_setting(paths):
    message = ingest_error(paths, "panel.csv", "timestamp,y\n2000-01-01,1\n", id_column="store")

    assert "panel.csv: series id column 'store' not found; columns are ['timestamp', 'y']" in message
    assert "Set data.id_column" in message and "(or null for one series)" in message


def test_integer_time_steps_are_refused_with_the_conversion_to_make(tmp_path: Path) -> None:
    path = tmp_path / "steps.csv"
    pd.DataFrame({"unique_id": ["H1"] * 4, "ds": [1, 2, 3, 4], "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(
        path, index=False
    )
    cfg = DataConfig(path=str(path), timestamp_column="ds", target="y", id_column="unique_id")
    with pytest.raises(DataError) as info:
        read_source(cfg, tmp_path)
    message = str(info.value)
    assert "column 'ds' holds integers (1, 2, 3, ...), step numbers rather than timestamps" in message
    assert "pd.to_timedelta(df['ds'] - 1, unit='h')" in message
