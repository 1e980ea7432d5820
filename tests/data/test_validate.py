"""The validate stage, one series and many alike: one test per rule, each asserting what the error names.

One series is a panel of one, so a behaviour both have is one test over S in {1, 3}. The rules
are the same; how a failure reads is presentation: one series names its timestamps and file
rows, many series name the bad series (``s1 (...)``), so such tests give both readings.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests.helpers.repos import failure, lines_with, report, validate
from tests.helpers.series_frames import N, drop, frame_of, panel_frame, series_rows, with_ids
from tsforecast.errors import DataValidationError
from tsforecast.io import read_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META

ONE_AND_MANY = pytest.mark.parametrize("n_series", [1, 3])


def by_series(out: pd.DataFrame) -> list[pd.DataFrame]:
    """The validated frame's series (the whole frame for one series)."""
    if "sid" not in out.columns:
        return [out]
    return [g for _, g in out.groupby("sid", sort=False, observed=True)]


def one_or_many(n_series: int, one: str, many: str) -> str:
    return one if n_series == 1 else many


# ------------------------------------------------------------------ clean data passes


@ONE_AND_MANY
def test_clean_data_is_written_on_each_series_grid_as_float64(make_repo, n_series):
    frame = frame_of(n_series)
    frame["temp"] = np.arange(len(frame))  # an int covariate becomes float64
    frame["ignored"] = "text"  # columns outside the config are dropped
    repo = make_repo(frame, covariates=["temp"], **with_ids(n_series))

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert list(out.columns) == [*with_ids(n_series).values(), "timestamp", "y", "temp"]
    assert pd.api.types.is_datetime64_dtype(out["timestamp"])
    assert out["y"].dtype == "float64" and out["temp"].dtype == "float64"
    for series in by_series(out):
        assert len(series) == N and (series["timestamp"].diff().iloc[1:] == pd.Timedelta("1h")).all()
    np.testing.assert_allclose(out["y"], frame["y"])
    meta = read_json(repo.paths.validated / VALIDATED_META)
    assert (meta["freq"], meta["n_rows"], meta["n_series"], meta["filled"]) == (
        "h",
        n_series * N,
        n_series,
        [] if n_series == 1 else {},
    )
    assert (result.n_series, result.n_rows, result.n_filled, result.freq) == (n_series, n_series * N, 0, "h")
    assert result.n_expectations == report(repo)["n_expectations"] > 10


def test_one_series_keeps_its_one_series_file_and_meta(make_repo):
    repo = make_repo(frame_of(1))

    validate(repo)

    assert list(pd.read_parquet(repo.paths.validated / VALIDATED_FILE).columns) == ["timestamp", "y"]
    assert read_json(repo.paths.validated / VALIDATED_META) == {
        "freq": "h",
        "n_rows": N,
        "start": "2000-01-01 00:00:00",
        "end": "2000-01-02 15:00:00",
        "tz": None,
        "filled": [],
        "source": "series.csv",
        "id_column": None,
        "n_series": 1,
    }


def test_rows_in_any_order_are_written_by_series_in_first_appearance_order_then_time(make_repo):
    frame = panel_frame()  # rows shuffled: the series interleave
    repo = make_repo(frame, id_column="sid")

    validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    first_seen = list(dict.fromkeys(frame["sid"]))
    assert list(dict.fromkeys(out["sid"].astype(str))) == first_seen
    assert list(out["sid"].cat.categories) == first_seen
    for sid, group in out.groupby("sid", sort=False, observed=True):
        assert group["timestamp"].is_monotonic_increasing and len(group) == N
        expected = frame[frame["sid"] == sid].sort_values("timestamp")["y"].to_numpy()
        np.testing.assert_allclose(group["y"], expected)
    meta = read_json(repo.paths.validated / VALIDATED_META)
    assert (meta["id_column"], meta["n_series"], meta["n_rows"]) == ("sid", 4, 4 * N)
    assert (meta["start"], meta["end"]) == ("2000-01-01 00:00:00", "2000-01-02 18:00:00")


@ONE_AND_MANY
def test_reports_and_data_docs_are_written_on_success(make_repo, n_series):
    repo = make_repo(frame_of(n_series), **with_ids(n_series))

    validate(repo)

    rep = report(repo)
    assert rep["success"] is True
    assert (rep["n_series"], rep["n_rows"], rep["n_filled"], rep["n_failed"], rep["freq"]) == (
        n_series,
        n_series * N,
        0,
        0,
        "h",
    )
    assert rep["n_raw_rows"] == n_series * N and rep["lengths"] == {"min": N, "median": N, "max": N}
    assert {"source", "filled", "n_trimmed_rows", "n_series_filled", "filled_by_series", "id_column"} <= set(
        rep
    )
    assert len(rep["expectations"]) == rep["n_expectations"]
    kinds = {e["expectation"] for e in rep["expectations"]}
    assert {"expect_column_to_exist", "expect_column_values_to_not_be_null"} <= kinds
    checked = {e["gx_column"] for e in rep["expectations"]}
    rules = {"repeated", "out_of_order", "off_grid", "rows"}
    assert {f"timestamp.{r}" for r in rules} | {"y.non_finite", "y.longest_gap", "y.spread"} <= checked
    assert (repo.paths.reports / "data_docs" / "index.html").is_file()


@ONE_AND_MANY
def test_tz_aware_timestamps_are_kept(make_repo, n_series):
    frame = frame_of(n_series)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    repo = make_repo(frame, **with_ids(n_series))

    validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["timestamp"].min() == pd.Timestamp("2000-01-01", tz="UTC")
    assert read_json(repo.paths.validated / VALIDATED_META)["tz"] == "UTC"


# ------------------------------------------------------------------ the timestamps


@ONE_AND_MANY
def test_duplicate_timestamp_is_named_in_the_error(make_repo, n_series):
    frame = frame_of(n_series)
    rows = series_rows(frame, "s1")
    frame.loc[rows[3], "timestamp"] = frame.loc[rows[2], "timestamp"]

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'timestamp': values must be unique: 2000-01-01 02:00:00 appears 2 times "
        "(rows 2, 3); drop or aggregate duplicates",
        "series.csv: column 'timestamp': 1 of 3 series repeat a timestamp: s1 (1 repeated, e.g. "
        "2000-01-01 03:00:00); timestamps must be unique within a series - drop or aggregate duplicates",
    )


def test_duplicate_timestamps_name_every_series_that_repeats_one(make_repo):
    frame = panel_frame(shuffle=False)
    extra = frame[frame["sid"].isin(["s1", "s3"])].groupby("sid").head(1)
    repo = make_repo(pd.concat([frame, extra], ignore_index=True), id_column="sid")

    (line,) = lines_with(failure(repo), "repeat a timestamp")

    assert line.startswith("series.csv: column 'timestamp': 2 of 4 series repeat a timestamp: s")
    assert "s1 (1 repeated, e.g. 2000-01-01 01:00:00)" in line and "s3 (1 repeated, e.g. " in line
    assert "s0" not in line and "s2" not in line


@ONE_AND_MANY
def test_rows_out_of_time_order_are_named_when_each_series_is_one_block(make_repo, n_series):
    frame = frame_of(n_series)  # each series one block of rows, as one series always is
    rows = series_rows(frame, "s1")
    frame.loc[rows[[3, 4]]] = frame.loc[rows[[4, 3]]].to_numpy()

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'timestamp': values must be strictly increasing: 2000-01-01 03:00:00 (row 4) "
        "comes after 2000-01-01 04:00:00 (row 3); sort the rows by time",
        "series.csv: column 'timestamp': 1 of 3 series list rows out of time order: s1 (1 rows, e.g. "
        "2000-01-01 04:00:00 (row 44) comes after 2000-01-01 05:00:00 (row 43)); sort the rows by series and time",
    )


@ONE_AND_MANY
def test_timestamps_off_the_grid_are_named(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1")[10], "timestamp"] += pd.Timedelta("17min")

    message = failure(make_repo(frame, **with_ids(n_series)))

    if n_series == 1:
        assert "column 'timestamp': values must follow one regular frequency ('h', inferred)" in message
        assert "2000-01-01 10:17:00 (row 10)" in message and "resample to one frequency" in message
    else:
        (line,) = lines_with(message, "off the panel's frequency")
        assert "1 of 3 series are off the panel's frequency ('h', inferred;" in line
        assert (
            "s1 (1 rows, e.g. 2000-01-01 11:17:00)" in line
            and "resample every series to one frequency" in line
        )


@ONE_AND_MANY
def test_explicit_freq_that_does_not_match_the_data_fails(make_repo, n_series):
    message = failure(make_repo(frame_of(n_series), freq="30min", **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'timestamp': values must step by data.freq='30min': the most common step is h "
        "(39 of 39 steps); set data.freq='h' or 'auto'",
        "series.csv: column 'timestamp': values must step by data.freq='30min': the panel's most common "
        "step is h; set data.freq='h' or 'auto'",
    )


@ONE_AND_MANY
def test_explicit_freq_that_matches_the_data_passes(make_repo, n_series):
    repo = make_repo(frame_of(n_series), freq="h", **with_ids(n_series))

    assert validate(repo).freq == "h"


def test_one_frequency_is_inferred_for_the_whole_panel_from_its_calendar(make_repo):
    parts = []
    for i in range(3):
        ts = pd.date_range("2000-01-01", periods=N, freq="MS") + pd.DateOffset(months=i)
        parts.append(pd.DataFrame({"sid": f"m{i}", "timestamp": ts, "y": np.sin(np.arange(N)) + i}))
    frame = drop(pd.concat(parts, ignore_index=True), "m1", [5])  # one month missing in m1
    repo = make_repo(frame, id_column="sid")

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    m1 = out[out["sid"] == "m1"]["timestamp"]
    assert result.freq == "MS" and len(m1) == N and result.n_filled == 1
    assert m1.iloc[5] == pd.Timestamp("2000-07-01")


# ------------------------------------------------------------------ gaps


@ONE_AND_MANY
def test_short_nan_gap_is_filled_and_listed_in_the_report(make_repo, n_series):
    frame = frame_of(n_series)
    rows = series_rows(frame, "s1")
    frame.loc[rows[5:7], "y"] = np.nan  # 2 steps, data.fill_gaps=2
    repo = make_repo(frame, **with_ids(n_series))

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    y4, y7 = frame.loc[rows[4], "y"], frame.loc[rows[7], "y"]
    np.testing.assert_allclose(out.loc[rows[5:7], "y"], [y4 + (y7 - y4) / 3, y4 + 2 * (y7 - y4) / 3])
    filled = one_or_many(n_series, ["2000-01-01 05:00:00", "2000-01-01 06:00:00"], {"s1": 2})
    assert result.n_filled == 2 and report(repo)["filled"] == filled
    assert read_json(repo.paths.validated / VALIDATED_META)["filled"] == filled
    assert report(repo)["n_series_filled"] == 1


@ONE_AND_MANY
def test_missing_timestamps_on_the_grid_are_filled_by_interpolation(make_repo, n_series):
    repo = make_repo(drop(frame_of(n_series), "s1", [5, 6]), **with_ids(n_series))

    result = validate(repo)

    assert (result.n_rows, result.n_filled) == (n_series * N, 2)
    if n_series == 1:
        assert report(repo)["filled"] == ["2000-01-01 05:00:00", "2000-01-01 06:00:00"]
    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    for series in by_series(out):
        assert (series["timestamp"].diff().iloc[1:] == pd.Timedelta("1h")).all()
    assert not out["y"].isna().any()


def test_short_gaps_are_filled_inside_each_series_never_from_its_neighbour(make_repo):
    frame = panel_frame(3)
    frame["x"] = frame["y"] * 2
    frame = drop(frame, "s1", [1])  # a missing timestamp in s1: between s1's rows 0 and 2
    first_s2 = frame[frame["sid"] == "s2"]["timestamp"].idxmin()
    frame.loc[first_s2, "x"] = np.nan  # s2's first covariate empty: s2's next value, not s1's last
    last_s1 = frame[frame["sid"] == "s1"]["timestamp"].idxmax()
    frame.loc[last_s1, "x"] = np.nan  # s1's last: s1's previous value, not s2's first
    repo = make_repo(frame, id_column="sid", covariates=["x"])

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    s1, s2 = (out[out["sid"] == sid] for sid in ("s1", "s2"))
    y1, x1 = s1["y"].to_numpy(), s1["x"].to_numpy()
    assert len(s1) == N and y1[1] == pytest.approx((y1[0] + y1[2]) / 2)
    assert x1[-1] == x1[-2] == pytest.approx(2 * (1000 + N - 2 + np.sin(N - 2)))
    assert s2["x"].iloc[0] == s2["x"].iloc[1] == pytest.approx(2 * (2001 + np.sin(1)))
    assert result.n_filled == 3
    assert read_json(repo.paths.validated / VALIDATED_META)["filled"] == {"s1": 2, "s2": 1}
    rep = report(repo)
    assert (rep["n_series_filled"], rep["filled_by_series"]) == (2, {"s1": 2, "s2": 1})


@ONE_AND_MANY
def test_empty_targets_before_and_after_a_series_values_are_dropped_not_filled(make_repo, n_series):
    frame = frame_of(n_series)  # as a wide table of unequal series turned long:
    rows = series_rows(frame, "s1")
    frame.loc[rows[:4], "y"] = np.nan  # padded at its start
    frame.loc[rows[-6:], "y"] = np.nan  # and at its end
    repo = make_repo(frame, **with_ids(n_series))

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert (result.n_rows, result.n_filled) == (n_series * N - 10, 0)
    starts = (
        out.groupby("sid", observed=True)["timestamp"].min() if n_series > 1 else out["timestamp"].iloc[:1]
    )
    assert pd.Timestamp(one_or_many(n_series, "2000-01-01 04:00", "2000-01-01 05:00")) in set(starts)
    assert report(repo)["n_trimmed_rows"] == 10


@ONE_AND_MANY
def test_nan_run_longer_than_fill_gaps_names_its_timestamps(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1")[5:10], "y"] = np.nan

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'y': gaps (missing timestamps or empty values) must be at most data.fill_gaps=2: "
        "5 missing steps from 2000-01-01 05:00:00 to 2000-01-01 09:00:00; fill them in the source, drop that "
        "stretch of rows, or raise data.fill_gaps",
        "series.csv: column 'y': 1 of 3 series have gaps (missing timestamps or empty values) longer than "
        "data.fill_gaps=2: s1 (5 missing steps from 2000-01-01 06:00:00 to 2000-01-01 10:00:00); fill them "
        "in the source, drop those series or stretches, or raise data.fill_gaps",
    )


@ONE_AND_MANY
def test_missing_timestamps_longer_than_fill_gaps_fail_naming_the_run(make_repo, n_series):
    repo = make_repo(drop(frame_of(n_series), "s1", [5, 6, 7, 8]), **with_ids(n_series))

    (line,) = lines_with(failure(repo), "gaps")

    assert "column 'y': " in line
    at = one_or_many(
        n_series, "2000-01-01 05:00:00 to 2000-01-01 08:00:00", "2000-01-01 06:00:00 to 2000-01-01 09:00:00"
    )
    assert f"4 missing steps from {at}" in line


def test_gaps_longer_than_fill_gaps_name_each_series_and_its_first_long_gap(make_repo):
    frame = drop(drop(panel_frame(), "s0", [10, 11, 12]), "s3", [20, 21, 22, 23])
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "gaps")

    assert "column 'y': 2 of 4 series have gaps (missing timestamps or empty values) longer than " in line
    assert "data.fill_gaps=2: s0 (3 missing steps from 2000-01-01 10:00:00 to 2000-01-01 12:00:00)" in line
    assert "s3 (4 missing steps from 2000-01-01 23:00:00 to 2000-01-02 02:00:00)" in line
    assert "or raise data.fill_gaps" in line


def test_gaps_of_every_column_make_one_line_naming_the_column_of_each_series_first_gap(make_repo):
    frame = drop(panel_frame(3, shuffle=False), "s0", [10, 11, 12])  # missing in every column
    frame["temp"] = np.cos(np.arange(len(frame)))
    frame.loc[frame.index[frame["sid"] == "s2"][20:24], "temp"] = np.nan  # in temp only
    repo = make_repo(frame, id_column="sid", covariates=["temp"])

    (line,) = lines_with(failure(repo), "gaps")

    assert line.startswith("series.csv: columns ['y', 'temp']: 2 of 3 series have gaps")
    assert "s0 (3 missing steps from 2000-01-01 10:00:00 to 2000-01-01 12:00:00 in 'y')" in line
    assert "s2 (4 missing steps from 2000-01-01 22:00:00 to 2000-01-02 01:00:00 in 'temp')" in line


def test_a_series_with_no_value_at_all_is_a_gap_that_cannot_be_filled(make_repo):
    frame = panel_frame(2)
    frame.loc[frame["sid"] == "s1", "y"] = np.nan
    repo = make_repo(frame, id_column="sid", fill_gaps=1000)

    (line,) = lines_with(failure(repo), "gaps")

    assert "1 of 2 series have gaps" in line and "s1 (40 missing steps from 2000-01-01 01:00:00" in line


# ------------------------------------------------------------------ the columns and their values


@ONE_AND_MANY
def test_non_numeric_target_names_the_bad_values(make_repo, n_series):
    frame = frame_of(n_series)
    frame["y"] = frame["y"].astype(str)
    frame.loc[7, "y"] = "abc"

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert "column 'y': values must be numeric: dtype is str, e.g. 'abc' (row 7)" in message


@ONE_AND_MANY
def test_missing_target_column_lists_the_columns(make_repo, n_series):
    message = failure(make_repo(frame_of(n_series), target="demand", **with_ids(n_series)))

    columns = one_or_many(n_series, "['timestamp', 'y']", "['sid', 'timestamp', 'y']")
    assert message == f"series.csv: column 'demand': column not found; columns are {columns}; set data.target"


@ONE_AND_MANY
def test_missing_and_non_numeric_covariates_are_named(make_repo, n_series):
    frame = frame_of(n_series)
    frame["temp"] = "warm"
    repo = make_repo(frame, covariates=["temp", "wind"], **with_ids(n_series))

    message = failure(repo)

    columns = one_or_many(n_series, "['timestamp', 'y', 'temp']", "['sid', 'timestamp', 'y', 'temp']")
    assert f"column 'wind': column not found; columns are {columns}; set data.covariates" in message
    assert "column 'temp': values must be numeric: dtype is str, e.g. 'warm' (row 0)" in message


def test_missing_ids_are_refused_by_the_frame_suite(make_repo):
    frame = panel_frame()
    frame.loc[[3, 7], "sid"] = None
    repo = make_repo(frame, id_column="sid")

    message = failure(repo)

    assert message == (
        "series.csv: column 'sid': values must not be empty: 2 row(s) without a series id (rows 3, 7); "
        "every row needs one"
    )


@ONE_AND_MANY
def test_inf_value_is_named_with_its_timestamp(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1")[6], "y"] = np.inf

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'y': values must be finite: inf at 2000-01-01 06:00:00 (row 6); replace them with "
        "numbers (or empty cells to have them interpolated)",
        "series.csv: column 'y': 1 of 3 series hold non-finite values (inf): s1 (1 values, e.g. at "
        "2000-01-01 07:00:00); replace them with numbers (or empty cells to have them interpolated)",
    )


def test_non_finite_values_name_the_series(make_repo):
    frame = panel_frame()
    frame.loc[frame.index[frame["sid"] == "s0"][:2], "y"] = np.inf
    frame.loc[frame.index[frame["sid"] == "s3"][:1], "y"] = -np.inf
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "non-finite")

    assert "column 'y': 2 of 4 series hold non-finite values (inf): s" in line
    assert "s0 (2 values, e.g. at " in line and "s3 (1 values" in line and "replace them with numbers" in line


@ONE_AND_MANY
def test_constant_target_fails_naming_its_value(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1"), "y"] = 3.0

    message = failure(make_repo(frame, **with_ids(n_series)))

    assert message == one_or_many(
        n_series,
        "series.csv: column 'y': values must vary: zero variance (every value is 3); a constant series "
        "cannot be forecast",
        "series.csv: column 'y': 1 of 3 series are constant: s1 (every value is 3); a constant series cannot "
        "be forecast - drop these series",
    )


@ONE_AND_MANY
def test_too_few_rows_says_how_many_are_needed(make_repo, n_series):
    repo = make_repo(drop(frame_of(n_series), "s1", list(range(20, N))), **with_ids(n_series))

    message = failure(repo)

    if n_series == 1:
        assert "not enough rows for the split and the window" in message
        assert "the series needs at least 30 rows, it has 20" in message
    else:
        assert message == (
            "series.csv: 1 of 3 series are too short for the split and the window: each needs at least 30 "
            "rows; too short: s1 (20 rows). Drop these series, bring more history, or lower "
            "window.input_size/horizon or split.*"
        )


@ONE_AND_MANY
def test_each_broken_rule_gets_its_own_line(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1")[6], "y"] = np.inf
    message = failure(make_repo(frame, covariates=["temp"], **with_ids(n_series)))

    lines = message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("series.csv: column '") for line in lines)


def test_every_broken_rule_of_many_series_is_one_line_of_one_report(make_repo):
    frame = panel_frame(5, shuffle=False)
    frame = pd.concat([frame, frame[frame["sid"] == "s1"].head(1)], ignore_index=True)  # duplicate
    frame = drop(frame, "s2", [10, 11, 12])  # a long gap
    frame.loc[frame["sid"] == "s4", "y"] = 1.0  # constant
    repo = make_repo(frame, id_column="sid")

    message = failure(repo)

    lines = message.splitlines()
    assert len(lines) == 3
    assert "s1 (" in lines[0] and "s2 (" in lines[1] and "s4 (" in lines[2]
    rep = report(repo)
    assert rep["success"] is False and rep["bad_series"] == ["s1", "s2", "s4"]


def test_a_report_names_twenty_series_and_counts_the_rest(make_repo):
    frame = panel_frame(30, shuffle=False)
    for i in range(25):
        frame = drop(frame, f"s{i}", [10, 11, 12])
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "gaps")

    assert "25 of 30 series have gaps" in line
    assert "s19 (3 missing steps" in line and "and 5 more;" in line
    assert "s20 (" not in line and "s25" not in line
    assert len(report(repo)["bad_series"]) == 25


# ------------------------------------------------------------------ outputs on failure


@ONE_AND_MANY
def test_failure_leaves_validated_output_unchanged(make_repo, n_series):
    repo = make_repo(frame_of(n_series), **with_ids(n_series))
    validate(repo)
    before = {p.name: p.read_bytes() for p in repo.paths.validated.iterdir()}
    bad = frame_of(n_series)
    rows = series_rows(bad, "s1")
    bad.loc[rows[3], "timestamp"] = bad.loc[rows[2], "timestamp"]
    repo = make_repo(bad, **with_ids(n_series))

    with pytest.raises(DataValidationError, match="unique"):
        validate(repo)

    after = {p.name: p.read_bytes() for p in repo.paths.validated.iterdir()}
    assert after == before
    assert not list(repo.paths.validated.parent.glob(".validated.*"))


@ONE_AND_MANY
def test_report_and_data_docs_are_written_on_failure(make_repo, n_series):
    frame = frame_of(n_series)
    frame.loc[series_rows(frame, "s1"), "y"] = 3.0
    repo = make_repo(frame, **with_ids(n_series))

    failure(repo)

    rep = report(repo)
    assert rep["success"] is False and rep["n_failed"] == 1
    (failed,) = [e for e in rep["expectations"] if not e["success"]]
    assert (failed["column"], failed["gx_column"]) == ("y", "y.spread")
    assert one_or_many(n_series, "zero variance", "are constant") in failed["details"]["message"]
    assert rep["bad_series"] == [one_or_many(n_series, "y", "s1")]  # one series: its implicit id
    assert (repo.paths.reports / "data_docs" / "index.html").is_file()
    assert not repo.paths.validated.exists()


# ------------------------------------------------------------------ chunks


def test_results_do_not_depend_on_how_series_are_chunked(make_repo, monkeypatch):
    frame = drop(panel_frame(6), "s3", [4, 5])
    repo = make_repo(frame, id_column="sid")
    validate(repo)
    whole = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    monkeypatch.setattr("tsforecast.data.series_checks.SECONDS_PER_ROW", 1.0)  # one series per chunk

    validate(repo)

    pd.testing.assert_frame_equal(pd.read_parquet(repo.paths.validated / VALIDATED_FILE), whole)


@pytest.mark.slow
def test_ten_thousand_series_of_a_thousand_rows_validate_well_under_a_minute(make_repo):
    from benchmarks.scale_data import synthetic_panel

    frame = synthetic_panel(10_000, 1_000).rename(columns={"unique_id": "sid", "value": "y"})
    frame = frame.drop(index=np.arange(500, 10_000_000, 100_000))  # one filled step in 100 series
    repo = make_repo(frame, suffix=".parquet", id_column="sid")

    started = time.perf_counter()
    result = validate(repo)
    seconds = time.perf_counter() - started

    assert (result.n_series, result.n_rows, result.n_filled) == (10_000, 10_000_000, 100)
    assert seconds < 40, f"{seconds:.1f} s (about 10 s on a free core)"
