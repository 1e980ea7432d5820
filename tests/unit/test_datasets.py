"""The embedded M4 hourly panel: the original file, byte for byte, in a long frame."""

from __future__ import annotations

import csv
import hashlib
import io

import numpy as np
import pandas as pd
import pytest

from tsforecast.data import datasets
from tsforecast.data.datasets import (
    M4_HOURLY_ORIGIN,
    M4_HOURLY_SHA256,
    load_m4_hourly,
    m4_hourly_csv_bytes,
)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_m4_hourly()


@pytest.fixture(scope="module")
def csv_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(m4_hourly_csv_bytes().decode("ascii"))))


def test_decompressed_file_is_the_original_csv() -> None:
    assert hashlib.sha256(m4_hourly_csv_bytes()).hexdigest() == M4_HOURLY_SHA256
    assert M4_HOURLY_SHA256 == "ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f"


def test_panel_has_414_series_named_h1_to_h414_in_file_order(panel: pd.DataFrame) -> None:
    assert list(panel.columns) == ["unique_id", "timestamp", "value"]
    ids = list(dict.fromkeys(panel["unique_id"]))
    assert ids == [f"H{i}" for i in range(1, 415)]


def test_each_series_keeps_its_own_length_without_nan(panel: pd.DataFrame) -> None:
    lengths = panel.groupby("unique_id", sort=False).size()
    assert lengths.between(700, 960).all()
    assert set(lengths) == {700, 960}
    assert lengths.sum() == len(panel) == 353_500
    assert not panel.isna().any().any()
    assert panel["value"].dtype == np.float64


def test_values_match_the_csv_row_by_row(panel: pd.DataFrame, csv_rows: list[list[str]]) -> None:
    header, first, last = csv_rows[0], csv_rows[1], csv_rows[-1]
    assert header[:2] == ["V1", "V2"]
    h1 = panel.loc[panel["unique_id"] == "H1", "value"].to_numpy()
    expected_h1 = [float(v) for v in first[1:] if v != ""]
    assert h1[:5].tolist() == [605.0, 586.0, 586.0, 559.0, 511.0]
    assert h1.tolist() == expected_h1
    h414 = panel.loc[panel["unique_id"] == "H414", "value"].to_numpy()
    assert h414.tolist() == [float(v) for v in last[1:] if v != ""]


def test_timestamps_are_hourly_from_the_documented_origin(panel: pd.DataFrame) -> None:
    assert M4_HOURLY_ORIGIN == pd.Timestamp("2000-01-01 00:00")
    for _, group in panel.groupby("unique_id", sort=False):
        ts = group["timestamp"]
        assert ts.iloc[0] == M4_HOURLY_ORIGIN
        assert (ts.diff().iloc[1:] == pd.Timedelta(hours=1)).all()


def test_column_names_can_be_chosen() -> None:
    frame = load_m4_hourly(id_column="series", timestamp_column="ds", target="y")
    assert list(frame.columns) == ["series", "ds", "y"]


def test_same_column_name_twice_is_refused_with_the_names() -> None:
    with pytest.raises(ValueError, match=r"\['x', 'timestamp', 'x'\] must be distinct"):
        load_m4_hourly(id_column="x", target="x")


def test_damaged_embedded_file_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "m4_hourly_csv_bytes", lambda: b"V1,V2\nH1,1\n")
    with pytest.raises(ValueError, match="package is damaged - reinstall tsforecast"):
        load_m4_hourly()
