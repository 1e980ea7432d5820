"""The validate stage: one test per rule, each asserting what the error message names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tsforecast.errors import DataValidationError
from tsforecast.io import read_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META
from tsforecast.data.validate import run_validate

N_ROWS = 40  # the split and window of the make_repo fixture need at least 30


def hourly_frame(n: int = N_ROWS, freq: str = "h") -> pd.DataFrame:
    """A non-constant series with columns timestamp, y, from 2000-01-01 every ``freq``."""
    ts = pd.date_range("2000-01-01", periods=n, freq=freq)
    return pd.DataFrame({"timestamp": ts, "y": 10 + np.sin(np.arange(n, dtype="float64"))})


def failure(repo) -> str:
    with pytest.raises(DataValidationError) as info:
        run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)
    return str(info.value)


def report(repo) -> dict:
    return read_json(repo.paths.reports / "validation.json")


# ------------------------------------------------------------------ a clean series passes


def test_clean_series_is_written_on_the_grid_as_float64(make_repo):
    frame = hourly_frame()
    frame["temp"] = np.arange(N_ROWS)  # an int covariate becomes float64
    frame["ignored"] = "text"  # columns outside the config are dropped
    repo = make_repo(frame, covariates=["temp"])

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert list(out.columns) == ["timestamp", "y", "temp"]
    assert pd.api.types.is_datetime64_dtype(out["timestamp"])
    assert out["y"].dtype == "float64" and out["temp"].dtype == "float64"
    assert (out["timestamp"].diff().iloc[1:] == pd.Timedelta("1h")).all()
    np.testing.assert_allclose(out["y"], frame["y"])
    meta = read_json(repo.paths.validated / VALIDATED_META)
    assert meta == {
        "freq": "h",
        "n_rows": N_ROWS,
        "start": "2000-01-01 00:00:00",
        "end": "2000-01-02 15:00:00",
        "tz": None,
        "filled": [],
        "source": "series.csv",
    }
    assert (result.n_rows, result.n_filled, result.freq) == (N_ROWS, 0, "h")
    assert result.n_expectations == report(repo)["n_expectations"] > 10


def test_reports_and_data_docs_are_written_on_success(make_repo):
    repo = make_repo(hourly_frame())
    run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    rep = report(repo)
    assert rep["success"] is True
    assert (rep["n_rows"], rep["n_filled"], rep["n_failed"], rep["freq"]) == (N_ROWS, 0, 0, "h")
    assert len(rep["expectations"]) == rep["n_expectations"]
    kinds = {e["expectation"] for e in rep["expectations"]}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_be_increasing"} <= kinds
    assert (repo.paths.reports / "data_docs" / "index.html").is_file()


def test_tz_aware_timestamps_are_kept(make_repo):
    frame = hourly_frame()
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    repo = make_repo(frame)

    run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert read_json(repo.paths.validated / VALIDATED_META)["tz"] == "UTC"


# ------------------------------------------------------------------ the timestamp column


def test_duplicate_timestamp_is_named_in_the_error(make_repo):
    frame = hourly_frame()
    frame.loc[3, "timestamp"] = frame.loc[2, "timestamp"]

    message = failure(make_repo(frame))

    assert message == (
        "series.csv: column 'timestamp': values must be unique: 2000-01-01 02:00:00 appears 2 times "
        "(rows 2, 3); drop or aggregate duplicates"
    )


def test_unsorted_timestamps_are_named(make_repo):
    frame = hourly_frame()
    frame.loc[[3, 4]] = frame.loc[[4, 3]].to_numpy()

    message = failure(make_repo(frame))

    assert "column 'timestamp': values must be strictly increasing" in message
    assert "2000-01-01 03:00:00 (row 4) comes after 2000-01-01 04:00:00 (row 3)" in message
    assert "sort the rows by time" in message


def test_irregular_spacing_names_the_timestamps_off_the_grid(make_repo):
    frame = hourly_frame()
    frame.loc[10, "timestamp"] += pd.Timedelta("17min")

    message = failure(make_repo(frame))

    assert "column 'timestamp': values must follow one regular frequency ('h', inferred)" in message
    assert "2000-01-01 10:17:00 (row 10)" in message


def test_explicit_freq_that_does_not_match_the_data_fails(make_repo):
    message = failure(make_repo(hourly_frame(), freq="30min"))

    assert "column 'timestamp': values must step by data.freq='30min'" in message
    assert "the most common step is h" in message
    assert "set data.freq='h' or 'auto'" in message


def test_explicit_freq_that_matches_the_data_passes(make_repo):
    repo = make_repo(hourly_frame(freq="30min"), freq="30min")

    assert (
        run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths).freq
        == "30min"
    )


# ------------------------------------------------------------------ gaps


def test_short_nan_gap_is_filled_and_listed_in_the_report(make_repo):
    frame = hourly_frame()
    frame.loc[5:6, "y"] = np.nan  # 2 steps, data.fill_gaps=2
    repo = make_repo(frame)

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    filled = ["2000-01-01 05:00:00", "2000-01-01 06:00:00"]
    assert result.n_filled == 2
    assert report(repo)["filled"] == filled
    assert read_json(repo.paths.validated / VALIDATED_META)["filled"] == filled
    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    y4, y7 = frame.loc[4, "y"], frame.loc[7, "y"]
    np.testing.assert_allclose(out.loc[5:6, "y"], [y4 + (y7 - y4) / 3, y4 + 2 * (y7 - y4) / 3])


def test_nan_run_longer_than_fill_gaps_names_its_timestamps(make_repo):
    frame = hourly_frame()
    frame.loc[5:9, "y"] = np.nan

    message = failure(make_repo(frame))

    assert "column 'y': gaps (missing timestamps or empty values) must be at most data.fill_gaps=2" in message
    assert "5 missing steps from 2000-01-01 05:00:00 to 2000-01-01 09:00:00" in message


def test_missing_timestamps_on_the_grid_are_filled_by_time_interpolation(make_repo):
    frame = hourly_frame().drop(index=[5, 6])
    repo = make_repo(frame)

    result = run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)

    assert (result.n_rows, result.n_filled) == (N_ROWS, 2)
    assert report(repo)["filled"] == ["2000-01-01 05:00:00", "2000-01-01 06:00:00"]
    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert (out["timestamp"].diff().iloc[1:] == pd.Timedelta("1h")).all()
    assert not out["y"].isna().any()


def test_missing_timestamps_longer_than_fill_gaps_fail_naming_the_run(make_repo):
    frame = hourly_frame().drop(index=[5, 6, 7, 8])

    message = failure(make_repo(frame))

    assert "column 'y': gaps" in message
    assert "4 missing steps from 2000-01-01 05:00:00 to 2000-01-01 08:00:00" in message


# ------------------------------------------------------------------ target and covariates


def test_non_numeric_target_names_the_bad_values(make_repo):
    frame = hourly_frame()
    frame["y"] = frame["y"].astype(str)
    frame.loc[7, "y"] = "abc"

    message = failure(make_repo(frame))

    assert "column 'y': values must be numeric: dtype is str, e.g. 'abc' (row 7)" in message


def test_missing_target_column_lists_the_columns(make_repo):
    message = failure(make_repo(hourly_frame(), target="demand"))

    assert message == (
        "series.csv: column 'demand': column not found: columns are ['timestamp', 'y']; set data.target"
    )


def test_missing_covariate_column_is_named(make_repo):
    message = failure(make_repo(hourly_frame(), covariates=["temp"]))

    assert "column 'temp': column not found: columns are ['timestamp', 'y']; set data.covariates" in message


def test_inf_value_is_named_with_its_timestamp(make_repo):
    frame = hourly_frame()
    frame.loc[6, "y"] = np.inf

    message = failure(make_repo(frame))

    assert "column 'y': values must be finite: inf at 2000-01-01 06:00:00 (row 6)" in message


def test_constant_target_fails_with_zero_variance(make_repo):
    frame = hourly_frame()
    frame["y"] = 3.0

    message = failure(make_repo(frame))

    assert "column 'y': values must vary: zero variance (every value is 3)" in message


def test_too_few_rows_says_how_many_are_needed(make_repo):
    message = failure(make_repo(hourly_frame(n=20)))

    assert "not enough rows for the split and the window" in message
    assert "the series needs at least 30 rows, it has 20" in message


def test_each_failed_expectation_gets_its_own_line(make_repo):
    frame = hourly_frame()
    frame.loc[6, "y"] = np.inf
    message = failure(make_repo(frame, covariates=["temp"]))

    lines = message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("series.csv: column '") for line in lines)


# ------------------------------------------------------------------ outputs on failure


def test_failure_leaves_validated_output_unchanged(make_repo):
    repo = make_repo(hourly_frame())
    run_validate(repo.cfg.data, repo.cfg.split, repo.cfg.window, repo.cfg.orchestration, repo.paths)
    before = {p.name: p.read_bytes() for p in repo.paths.validated.iterdir()}
    bad = hourly_frame()
    bad.loc[3, "timestamp"] = bad.loc[2, "timestamp"]
    repo = make_repo(bad)

    failure(repo)

    after = {p.name: p.read_bytes() for p in repo.paths.validated.iterdir()}
    assert after == before
    assert not list(repo.paths.validated.parent.glob(".validated.*"))


def test_report_and_data_docs_are_written_on_failure(make_repo):
    frame = hourly_frame()
    frame["y"] = 3.0
    repo = make_repo(frame)

    failure(repo)

    rep = report(repo)
    assert rep["success"] is False and rep["n_failed"] == 1
    (failed,) = [e for e in rep["expectations"] if not e["success"]]
    assert failed["expectation"] == "expect_column_stdev_to_be_between"
    assert failed["column"] == "y"
    assert "zero variance" in failed["details"]["message"]
    assert (repo.paths.reports / "data_docs" / "index.html").is_file()
    assert not repo.paths.validated.exists()
