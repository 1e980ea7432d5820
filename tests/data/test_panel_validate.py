"""The validate stage on a panel (data.id_column set): every rule names every bad series, in one report."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tsforecast.errors import DataValidationError
from tsforecast.io import read_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META
from tsforecast.data.validate import run_validate

N = 40  # rows per series; the make_repo split and window need at least 30


def panel_frame(n_series: int = 4, n: int = N, shuffle: bool = True) -> pd.DataFrame:
    """Series ``s<i>``: hourly from 2000-01-01 + i hours, ``y = 1000 i + row + sin(row)``; rows shuffled."""
    parts = []
    for i in range(n_series):
        ts = pd.date_range("2000-01-01", periods=n, freq="h") + pd.Timedelta(hours=i)
        y = 1000.0 * i + np.arange(n) + np.sin(np.arange(n))
        parts.append(pd.DataFrame({"sid": f"s{i}", "timestamp": ts, "y": y}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True) if shuffle else frame


def validate(repo):
    c = repo.cfg
    return run_validate(c.data, c.split, c.window, c.orchestration, repo.paths)


def failure(repo) -> str:
    with pytest.raises(DataValidationError) as info:
        validate(repo)
    assert not repo.paths.validated.exists(), "a failed validation must not write data/validated/"
    return str(info.value)


def lines_with(message: str, text: str) -> list[str]:
    return [line for line in message.splitlines() if text in line]


def drop(frame: pd.DataFrame, sid: str, rows: list[int]) -> pd.DataFrame:
    """``frame`` without rows ``rows`` (in time order) of series ``sid``."""
    own = frame[frame["sid"] == sid].sort_values("timestamp")
    return frame.drop(index=own.index[rows])


# ------------------------------------------------------------------ a clean panel


def test_clean_panel_is_written_by_series_in_first_appearance_order_then_time(make_repo):
    frame = panel_frame()
    repo = make_repo(frame, id_column="sid")

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    first_seen = list(dict.fromkeys(frame["sid"]))
    assert list(out.columns) == ["sid", "timestamp", "y"]
    assert list(dict.fromkeys(out["sid"].astype(str))) == first_seen
    assert list(out["sid"].cat.categories) == first_seen
    for sid, group in out.groupby("sid", sort=False, observed=True):
        assert group["timestamp"].is_monotonic_increasing and len(group) == N
        expected = frame[frame["sid"] == sid].sort_values("timestamp")["y"].to_numpy()
        np.testing.assert_allclose(group["y"], expected)
    meta = read_json(repo.paths.validated / VALIDATED_META)
    assert (meta["id_column"], meta["n_series"], meta["freq"], meta["n_rows"]) == ("sid", 4, "h", 4 * N)
    assert (meta["start"], meta["end"], meta["filled"]) == ("2000-01-01 00:00:00", "2000-01-02 18:00:00", {})
    assert (result.n_series, result.n_rows, result.n_filled, result.freq) == (4, 4 * N, 0, "h")
    report = read_json(repo.paths.reports / "validation.json")
    assert report["success"] and (report["n_series"], report["n_rows"], report["n_filled"]) == (4, 4 * N, 0)
    assert report["lengths"] == {"min": N, "median": N, "max": N}
    kinds = {e["expectation"] for e in report["expectations"]}
    assert {"expect_column_to_exist", "expect_column_values_to_not_be_null"} <= kinds
    assert (repo.paths.reports / "data_docs" / "index.html").is_file()


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
    report = read_json(repo.paths.reports / "validation.json")
    assert (report["n_series_filled"], report["filled_by_series"]) == (2, {"s1": 2, "s2": 1})


def test_empty_targets_before_and_after_a_series_values_are_dropped_not_filled(make_repo):
    frame = panel_frame(3, shuffle=False)  # as a wide table of unequal series turned long:
    frame.loc[frame.index[frame["sid"] == "s1"][-6:], "y"] = np.nan  # s1 padded at its end
    frame.loc[frame.index[frame["sid"] == "s2"][:4], "y"] = np.nan  # s2 at its start
    repo = make_repo(frame, id_column="sid")

    result = validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    lengths = out.groupby("sid", observed=True, sort=False).size()
    assert lengths.to_dict() == {"s0": N, "s1": N - 6, "s2": N - 4} and result.n_filled == 0
    assert out[out["sid"] == "s2"]["timestamp"].iloc[0] == pd.Timestamp("2000-01-01 06:00")
    assert read_json(repo.paths.reports / "validation.json")["n_trimmed_rows"] == 10


def test_tz_aware_panel_keeps_its_zone(make_repo):
    frame = panel_frame(2)
    frame["timestamp"] = frame["timestamp"].dt.tz_localize("UTC")
    repo = make_repo(frame, id_column="sid")

    validate(repo)

    out = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert str(out["timestamp"].dt.tz) == "UTC"
    assert out["timestamp"].min() == pd.Timestamp("2000-01-01", tz="UTC")


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


# ------------------------------------------------------------------ every rule names every bad series


def test_duplicate_timestamps_name_every_series_that_repeats_one(make_repo):
    frame = panel_frame(shuffle=False)
    extra = frame[frame["sid"].isin(["s1", "s3"])].groupby("sid").head(1)
    repo = make_repo(pd.concat([frame, extra], ignore_index=True), id_column="sid")

    (line,) = lines_with(failure(repo), "repeat a timestamp")

    assert line.startswith("series.csv: column 'timestamp': 2 of 4 series repeat a timestamp: s")
    assert (
        "s1 (1 repeated, e.g. 2000-01-01 01:00:00)" in line
        and "s3 (1 repeated, e.g. " in line
        and "s0" not in line
        and "s2" not in line
    )
    assert line.endswith("timestamps must be unique within a series - drop or aggregate duplicates")


def test_series_off_the_panel_frequency_are_named_with_a_timestamp(make_repo):
    frame = panel_frame()
    rows = frame.index[frame["sid"] == "s2"][:1]
    frame.loc[rows, "timestamp"] += pd.Timedelta("17min")
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "off the panel's frequency")

    assert "1 of 4 series are off the panel's frequency ('h', inferred;" in line
    off = frame.loc[rows[0], "timestamp"]
    assert f"s2 (1 rows, e.g. {off})" in line and "resample every series to one frequency" in line


def test_non_finite_values_name_the_series(make_repo):
    frame = panel_frame()
    frame.loc[frame.index[frame["sid"] == "s0"][:2], "y"] = np.inf
    frame.loc[frame.index[frame["sid"] == "s3"][:1], "y"] = -np.inf
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "non-finite")

    assert "column 'y': 2 of 4 series hold non-finite values (inf): s" in line
    assert "s0 (2 values, e.g. at " in line and "s3 (1 values" in line and "replace them with numbers" in line


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


def test_constant_series_are_named(make_repo):
    frame = panel_frame()
    frame.loc[frame["sid"] == "s2", "y"] = 5.0
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "constant")

    assert "column 'y': 1 of 4 series are constant: s2 (every value is 5)" in line


def test_too_short_series_are_named_with_their_length_and_the_need(make_repo):
    frame = panel_frame()
    frame = frame[~((frame["sid"] == "s1") & (frame["timestamp"] >= pd.Timestamp("2000-01-01 21:00")))]
    repo = make_repo(frame, id_column="sid")

    message = failure(repo)

    assert message == (
        "series.csv: 1 of 4 series are too short for the split and the window: each needs at least 30 "
        "rows; too short: s1 (20 rows). Drop these series, bring more history, or lower "
        "window.input_size/horizon or split.*"
    )


def test_every_broken_rule_is_one_line_of_one_report(make_repo):
    frame = panel_frame(5, shuffle=False)
    frame = pd.concat([frame, frame[frame["sid"] == "s1"].head(1)], ignore_index=True)  # duplicate
    frame = drop(frame, "s2", [10, 11, 12])  # a long gap
    frame.loc[frame["sid"] == "s4", "y"] = 1.0  # constant
    repo = make_repo(frame, id_column="sid")

    message = failure(repo)

    lines = message.splitlines()
    assert len(lines) == 3
    assert "s1 (" in lines[0] and "s2 (" in lines[1] and "s4 (" in lines[2]
    report = read_json(repo.paths.reports / "validation.json")
    assert report["success"] is False and report["bad_series"] == ["s1", "s2", "s4"]


def test_a_report_names_twenty_series_and_counts_the_rest(make_repo):
    frame = panel_frame(30, shuffle=False)
    for i in range(25):
        frame = drop(frame, f"s{i}", [10, 11, 12])
    repo = make_repo(frame, id_column="sid")

    (line,) = lines_with(failure(repo), "gaps")

    assert "25 of 30 series have gaps" in line
    assert "s19 (3 missing steps" in line and "and 5 more;" in line
    assert "s20 (" not in line and "s25" not in line
    assert len(read_json(repo.paths.reports / "validation.json")["bad_series"]) == 25


def test_an_explicit_freq_that_is_not_the_panel_s_step_fails(make_repo):
    repo = make_repo(panel_frame(), id_column="sid", freq="30min")

    assert failure(repo) == (
        "series.csv: column 'timestamp': values must step by data.freq='30min': the panel's most common "
        "step is h; set data.freq='h' or 'auto'"
    )


# ------------------------------------------------------------------ the frame (Great Expectations)


def test_missing_ids_are_refused_by_the_frame_suite(make_repo):
    frame = panel_frame()
    frame.loc[[3, 7], "sid"] = None
    repo = make_repo(frame, id_column="sid")

    message = failure(repo)

    assert message == (
        "series.csv: column 'sid': values must not be empty: 2 row(s) without a series id (rows 3, 7); "
        "every row needs one"
    )


def test_missing_and_non_numeric_columns_are_refused_by_the_frame_suite(make_repo):
    frame = panel_frame()
    frame["temp"] = "warm"
    repo = make_repo(frame, id_column="sid", covariates=["temp", "wind"])

    message = failure(repo)

    assert "column 'wind': column not found; columns are ['sid', 'timestamp', 'y', 'temp']" in message
    assert "set data.covariates" in message
    assert "column 'temp': values must be numeric: dtype is str, e.g. 'warm' (row 0)" in message


def test_a_failed_validation_keeps_the_previous_validated_panel(make_repo):
    repo = make_repo(panel_frame(), id_column="sid")
    validate(repo)
    before = (repo.paths.validated / VALIDATED_FILE).read_bytes()
    bad = panel_frame()
    bad.loc[bad["sid"] == "s0", "y"] = np.inf
    bad.to_csv(repo.paths.root / "series.csv", index=False)
    from tsforecast.data.ingest import run_ingest

    run_ingest(repo.cfg.data, repo.paths)
    with pytest.raises(DataValidationError, match="non-finite"):
        validate(repo)

    assert (repo.paths.validated / VALIDATED_FILE).read_bytes() == before


def test_results_do_not_depend_on_how_series_are_chunked(make_repo, monkeypatch):
    frame = drop(panel_frame(6), "s3", [4, 5])
    repo = make_repo(frame, id_column="sid")
    validate(repo)
    whole = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    monkeypatch.setattr("tsforecast.data.panel_validate.SECONDS_PER_ROW", 1.0)  # one series per chunk

    validate(repo)

    pd.testing.assert_frame_equal(pd.read_parquet(repo.paths.validated / VALIDATED_FILE), whole)


@pytest.mark.slow
def test_ten_thousand_series_of_a_thousand_rows_validate_well_under_a_minute(make_repo, monkeypatch):
    from benchmarks.scale_data import synthetic_panel

    frame = synthetic_panel(10_000, 1_000).rename(columns={"unique_id": "sid", "value": "y"})
    frame = frame.drop(index=np.arange(500, 10_000_000, 100_000))  # one filled step in 100 series
    repo = make_repo(frame, suffix=".parquet", id_column="sid")

    started = time.perf_counter()
    result = validate(repo)
    seconds = time.perf_counter() - started

    assert (result.n_series, result.n_rows, result.n_filled) == (10_000, 10_000_000, 100)
    assert seconds < 40, f"{seconds:.1f} s (about 10 s on a free core)"
