"""``data.freq: auto``: calendar frequencies are inferred through gaps, and gaps are named as gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsforecast.data.freq import infer_offset
from tsforecast.data.validate import run_validate
from tsforecast.errors import DataValidationError
from tsforecast.io import read_json
from tsforecast.paths import VALIDATED_FILE


def series(freq: str, n: int = 60, drop: slice | None = None, start: str = "2000-01-01") -> pd.DataFrame:
    """``n`` steps of ``freq`` from ``start``, rows ``drop`` removed; columns timestamp, y."""
    ts = pd.date_range(start, periods=n, freq=freq)
    frame = pd.DataFrame({"timestamp": ts, "y": 10 + np.sin(np.arange(n, dtype="float64"))})
    if drop is not None:
        frame = frame.drop(index=frame.index[drop]).reset_index(drop=True)
    return frame


def failure(repo) -> str:
    with pytest.raises(DataValidationError) as info:
        run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)
    return str(info.value)


# ------------------------------------------------------------------ infer_offset, pure

CALENDARS = [
    ("MS", "MS", "2000-01-01"),
    ("ME", "ME", "2000-01-31"),
    ("W-SUN", "W-SUN", "2000-01-02"),
    ("W-WED", "W-WED", "2000-01-05"),
    ("h", "h", "2000-01-01"),
    ("30min", "30min", "2000-01-01"),
    ("D", "D", "2000-01-01"),
    ("B", "B", "2000-01-03"),
    ("QS", "QS-JAN", "2000-01-01"),
    ("QS-FEB", "QS-FEB", "2000-02-01"),
    ("QE", "QE-DEC", "2000-03-31"),
    ("YS", "YS-JAN", "2000-01-01"),
    ("2MS", "2MS", "2000-01-01"),
    ("BMS", "BMS", "2000-01-03"),
]


@pytest.mark.parametrize(("freq", "expected", "start"), CALENDARS, ids=[c[0] for c in CALENDARS])
@pytest.mark.parametrize("gap", [slice(20, 44), slice(20, 22), slice(30, 31)], ids=["24", "2", "1"])
def test_frequency_is_inferred_through_a_gap(freq: str, expected: str, start: str, gap: slice) -> None:
    ts = series(freq, drop=gap, start=start)["timestamp"]

    assert infer_offset(ts).freqstr == expected


@pytest.mark.parametrize(("freq", "expected", "start"), CALENDARS, ids=[c[0] for c in CALENDARS])
def test_frequency_of_a_few_gappy_rows_is_still_found(freq: str, expected: str, start: str) -> None:
    ts = series(freq, n=8, drop=slice(2, 4), start=start)["timestamp"]

    assert infer_offset(ts).freqstr == expected


def test_monthly_data_with_a_gap_is_months_not_31_days() -> None:
    ts = series("MS", drop=slice(20, 44))["timestamp"]

    assert infer_offset(ts).freqstr == "MS"


def test_irregular_timestamps_keep_their_most_common_step() -> None:
    ts = series("h")["timestamp"].copy()
    ts.iloc[10] += pd.Timedelta("17min")

    assert infer_offset(ts).freqstr == "h"


def test_hourly_data_in_a_time_zone_with_a_gap_is_hourly() -> None:
    ts = pd.date_range("2000-01-10", periods=60, freq="h", tz="Europe/London")
    ts = ts.delete(range(20, 30))

    assert infer_offset(ts).freqstr == "h"


# ------------------------------------------------------------------ through the validate stage


def test_monthly_data_missing_24_months_fails_naming_the_gap_start_and_length(make_repo) -> None:
    message = failure(make_repo(series("MS", drop=slice(20, 44))))

    assert "regular frequency" not in message and "31D" not in message
    assert "column 'y': gaps (missing timestamps or empty values) must be at most data.fill_gaps=2" in message
    assert "24 missing steps from 2001-09-01 00:00:00 to 2003-08-01 00:00:00" in message


def test_monthly_data_with_a_short_gap_is_filled_on_the_month_start_grid(make_repo) -> None:
    repo = make_repo(series("MS", drop=slice(20, 22)))

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    assert (result.freq, result.n_rows, result.n_filled) == ("MS", 60, 2)
    report = read_json(repo.paths.reports / "validation.json")
    assert report["filled"] == ["2001-09-01 00:00:00", "2001-10-01 00:00:00"]
    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert list(out["timestamp"]) == list(pd.date_range("2000-01-01", periods=60, freq="MS"))


def test_monthly_gap_within_a_raised_fill_gaps_is_filled(make_repo) -> None:
    repo = make_repo(series("MS", n=80, drop=slice(20, 44)), fill_gaps=24)

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    assert (result.freq, result.n_rows, result.n_filled) == ("MS", 80, 24)


@pytest.mark.parametrize(
    ("freq", "start", "expected", "gap_text"),
    [
        ("W-SUN", "2000-01-02", "W-SUN", "5 missing steps from 2000-05-21 00:00:00 to 2000-06-18 00:00:00"),
        ("B", "2000-01-03", "B", "5 missing steps from 2000-01-31 00:00:00 to 2000-02-04 00:00:00"),
        ("h", "2000-01-01", "h", "5 missing steps from 2000-01-01 20:00:00 to 2000-01-02 00:00:00"),
        ("30min", "2000-01-01", "30min", "5 missing steps from 2000-01-01 10:00:00 to 2000-01-01 12:00:00"),
        ("QS", "2000-01-01", "QS-JAN", "5 missing steps from 2005-01-01 00:00:00 to 2006-01-01 00:00:00"),
        ("D", "2000-01-01", "D", "5 missing steps from 2000-01-21 00:00:00 to 2000-01-25 00:00:00"),
    ],
)
def test_a_gap_in_calendar_data_is_named_as_a_gap(make_repo, freq, start, expected, gap_text) -> None:
    repo = make_repo(series(freq, start=start, drop=slice(20, 25)))

    message = failure(repo)

    assert "regular frequency" not in message
    assert gap_text in message
    assert read_json(repo.paths.reports / "validation.json")["freq"] == expected


@pytest.mark.parametrize(
    ("freq", "start"), [("W-SUN", "2000-01-02"), ("B", "2000-01-03"), ("QS", "2000-01-01")]
)
def test_a_short_gap_in_calendar_data_is_filled(make_repo, freq, start) -> None:
    repo = make_repo(series(freq, start=start, drop=slice(20, 22)))

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    assert (result.n_rows, result.n_filled) == (60, 2)
    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert list(out["timestamp"]) == list(pd.date_range(start, periods=60, freq=freq))


def test_explicit_freq_mismatch_suggests_the_calendar_frequency(make_repo) -> None:
    message = failure(make_repo(series("MS"), freq="D"))

    assert "set data.freq='MS' or 'auto'" in message
