"""Bad input is refused with one error line that says what to fix, and the old outputs stay.

Two layers, by what each proves:

- **What each rule says (in-process, fast).** Every bad input (files, columns, timestamps,
  sizes, params, unknown keys) runs the stage that must refuse it through the CLI's entry
  point in this process (``tsforecast.cli.main([stage, "--root", root])``, after the stages
  before it ran the same way): exit code 1, exactly one ``error:`` line on stderr that names
  the file, the column or key, the offending value(s) and what was expected, no traceback,
  and ``data/validated``, ``data/prepared``, ``models`` and ``metrics`` byte-identical.
- **The whole path to the user (subprocess, slow).** One bad input per stage, run as a user
  runs it: ``dvc repro`` (DVC's ``persist`` plus the stage's atomic writes keep the old
  outputs, the stages after the failed one never start, dvc.lock keeps their entries and the
  failed stage stays out of date) or, where DVC would need MLflow first (register,
  forecast), the ``tsforecast`` console script. Same promise: the exit code, one line, the
  outputs unchanged.

The rules themselves are unit-tested in tests/data/test_validate.py and
tests/unit/test_ingest.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.reliability.conftest import (
    GUARDED,
    STAGE_ORDER,
    Repo,
    assert_user_error,
    in_process,
    series_frame,
)
from tsforecast import stages

BAD = "data/external/bad.csv"


@dataclass(frozen=True)
class Case:
    """One bad input: where it fails, what to write, which params, and what the error says."""

    stage: str  # the first stage that must refuse it
    expected: tuple[str, ...]  # substrings of the error line: file, column/key, value(s), expectation
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Callable[[], str | bytes | pd.DataFrame]] = field(default_factory=dict)


def frame_with(**changes: Callable[[pd.DataFrame], None]) -> Callable[[], pd.DataFrame]:
    def build() -> pd.DataFrame:
        df = series_frame().astype({"y": object, "timestamp": object})
        for change in changes.values():
            change(df)
        return df

    return build


def _set(col: str, rows: Any, value: Any) -> Callable[[pd.DataFrame], None]:
    def change(df: pd.DataFrame) -> None:
        df.loc[rows, col] = value

    return change


def _irregular_timestamps(df: pd.DataFrame) -> None:
    # steps of 60, 60, 45, 75 minutes: hourly on most rows, every fourth row off the grid
    steps = np.tile([60, 60, 45, 75], len(df))[: len(df) - 1]
    ts = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.r_[0, np.cumsum(steps)], unit="min")
    df["timestamp"] = ts.strftime("%Y-%m-%d %H:%M:%S")


def _words(df: pd.DataFrame) -> None:
    df["y"] = np.where(np.arange(len(df)) % 2, "high", "low")


def _mixed_zones(df: pd.DataFrame) -> None:
    ts = pd.to_datetime(df["timestamp"])
    df["timestamp"] = np.where(
        np.arange(len(df)) < 300,
        ts.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        ts.dt.strftime("%Y-%m-%dT%H:%M:%S+02:00"),
    )


def _swap_rows_50_51(df: pd.DataFrame) -> None:
    df.loc[[50, 51], "timestamp"] = df.loc[[51, 50], "timestamp"].to_numpy()


ON_BAD = {"data.path": BAD}

FILE_CASES = {
    "missing": Case(
        "ingest",
        ("data.path=", "data/external/nope.csv", "file not found", "set data.path to a CSV/Parquet file"),
        params={"data.path": "data/external/nope.csv"},
    ),
    "empty": Case(
        "ingest",
        ("bad.csv", "the file is empty", "expected a CSV with a header row"),
        ON_BAD,
        {BAD: lambda: ""},
    ),
    "header_only": Case(
        "ingest",
        ("bad.csv", "has a header (['timestamp', 'y', 'temp'])", "but no rows"),
        ON_BAD,
        {BAD: lambda: "timestamp,y,temp\n"},
    ),
    "spreadsheet_not_csv_or_parquet": Case(
        "ingest",
        ("bad.xlsx", "unsupported file type '.xlsx'", "use .csv, .tsv or .parquet"),
        {"data.path": "data/external/bad.xlsx"},
        {"data/external/bad.xlsx": lambda: b"PK\x03\x04 a zip, not a table"},
    ),
    "binary_named_csv": Case(
        "ingest",
        ("bad.csv", "not a readable CSV", "can't decode byte 0x89", "expected comma-separated text"),
        ON_BAD,
        {BAD: lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"},
    ),
    "csv_named_parquet": Case(
        "ingest",
        ("bad.parquet", "not a readable Parquet file", "Parquet magic bytes not found"),
        {"data.path": "data/external/bad.parquet"},
        {"data/external/bad.parquet": lambda: series_frame().to_csv(index=False)},
    ),
    "semicolon_delimited": Case(
        "ingest",
        ("bad.csv", "one column 'timestamp;y;temp' was read", "';'-delimited", "Save it comma-separated"),
        ON_BAD,
        {BAD: lambda: series_frame().to_csv(index=False, sep=";")},
    ),
    "directory": Case(
        "ingest",
        ("data.path=", "data/external'", "is a directory", "point it at one CSV or Parquet file"),
        {"data.path": "data/external"},
    ),
}

COLUMN_CASES = {
    "timestamp_missing": Case(
        "ingest",
        (
            "bad.csv",
            "column 'timestamp' not found",
            "columns are ['time', 'y', 'temp']",
            "Set data.timestamp_column",
        ),
        ON_BAD,
        {BAD: lambda: series_frame().rename(columns={"timestamp": "time"})},
    ),
    "target_missing": Case(
        "validate",
        ("bad.csv", "column 'y'", "not found", "columns are ['timestamp', 'temp']", "set data.target"),
        ON_BAD,
        {BAD: lambda: series_frame().drop(columns="y")},
    ),
    "covariate_missing": Case(
        "validate",
        ("bad.csv", "column 'temp'", "not found", "columns are ['timestamp', 'y']", "set data.covariates"),
        ON_BAD,
        {BAD: lambda: series_frame().drop(columns="temp")},
    ),
    "target_non_numeric": Case(
        "validate",
        ("bad.csv", "column 'y'", "values must be numeric", "'low' (row 0), 'high' (row 1)", "(600 in all)"),
        ON_BAD,
        {BAD: frame_with(words=_words)},
    ),
    "target_mixed_types": Case(
        "validate",
        (
            "bad.csv",
            "column 'y'",
            "values must be numeric",
            "'12,5' (row 7), 'ten' (row 42)",
            "fix or remove",
        ),
        ON_BAD,
        {BAD: frame_with(a=_set("y", 7, "12,5"), b=_set("y", 42, "ten"))},
    ),
    "target_inf": Case(
        "validate",
        (
            "bad.csv",
            "column 'y'",
            "values must be finite",
            "inf at 2024-01-01 09:00:00 (row 9), -inf at 2024-01-01 20:00:00 (row 20)",
        ),
        ON_BAD,
        {BAD: frame_with(a=_set("y", 9, np.inf), b=_set("y", 20, -np.inf))},
    ),
    "target_zero_variance": Case(
        "validate",
        (
            "bad.csv",
            "column 'y'",
            "values must vary",
            "every value is 5",
            "a constant series cannot be forecast",
        ),
        ON_BAD,
        {BAD: frame_with(flat=_set("y", slice(None), 5.0))},
    ),
    "nan_run_longer_than_fill_gaps": Case(
        "validate",
        (
            "bad.csv",
            "column 'y'",
            "must be at most data.fill_gaps=2",
            "5 missing steps from 2024-01-05 04:00:00 to 2024-01-05 08:00:00",
        ),
        ON_BAD,
        {BAD: frame_with(gap=_set("y", slice(100, 104), np.nan))},
    ),
}

TIME_CASES = {
    "duplicate_timestamp": Case(
        "validate",
        (
            "bad.csv",
            "column 'timestamp'",
            "values must be unique",
            "2024-01-03 01:00:00 appears 2 times (rows 49, 50)",
        ),
        ON_BAD,
        {BAD: frame_with(dup=_set("timestamp", 50, "2024-01-03 01:00:00"))},
    ),
    "unsorted_timestamps": Case(
        "validate",
        (
            "bad.csv",
            "column 'timestamp'",
            "strictly increasing",
            "2024-01-03 02:00:00 (row 51) comes after 2024-01-03 03:00:00 (row 50)",
            "sort the rows by time",
        ),
        ON_BAD,
        {BAD: frame_with(swap=_swap_rows_50_51)},
    ),
    "unparseable_timestamp": Case(
        "ingest",
        ("bad.csv", "column 'timestamp'", "unparseable timestamps ['not a date']", "use ISO 8601"),
        ON_BAD,
        {BAD: frame_with(bad=_set("timestamp", 30, "not a date"))},
    ),
    "mixed_time_zones": Case(
        "ingest",
        (
            "bad.csv",
            "column 'timestamp'",
            "mixes time zones",
            "['+00:00', '+02:00']",
            "convert every timestamp to one zone",
        ),
        ON_BAD,
        {BAD: frame_with(zones=_mixed_zones)},
    ),
    "irregular_spacing": Case(
        "validate",
        (
            "bad.csv",
            "column 'timestamp'",
            "values must follow one regular frequency ('h', inferred)",
            "2024-01-01 02:45:00 (row 3)",
            "(150 in all)",
            "resample to one frequency or set data.freq",
        ),
        ON_BAD,
        {BAD: frame_with(steps=_irregular_timestamps)},
    ),
}

SIZE_CASES = {
    "fewer_rows_than_split_and_window_need": Case(
        "validate",
        (
            "bad.csv",
            "not enough rows for the split and the window: train has 24 rows",
            "train needs >= input_size+horizon = 30 rows",
            "window.input_size=24, window.horizon=6",
            "the series needs at least 50 rows, it has 40",
        ),
        ON_BAD,
        {BAD: lambda: series_frame(40)},
    ),
}

PARAM_CASES = {
    # run by hand, every stage refuses it at config load (ingest first); through DVC, validate
    # (the first stage that reads `split`): test_unknown_param_key_through_dvc_...
    "unknown_key": Case(
        "ingest",
        (
            "params.yaml",
            "unknown key 'split.trian'",
            "allowed keys here are ['train', 'val', 'test', 'lookback', 'anchor']",
        ),
        {"split.trian": 0.6},
    ),
    "wrong_type": Case(
        "ingest",
        ("params.yaml", "train.epochs='many'", "should be a valid integer"),
        {"train.epochs": "many"},
    ),
    "wrong_type_in_a_union": Case(
        "ingest",
        ("params.yaml", "split.lookback='maybe'", "'auto', True or False"),
        {"split.lookback": "maybe"},
    ),
    "zero_size": Case(
        "ingest", ("params.yaml", "window.input_size=0", "greater than 0"), {"window.input_size": 0}
    ),
    "negative_size": Case(
        "ingest", ("params.yaml", "train.batch_size=-4", "greater than 0"), {"train.batch_size": -4}
    ),
    "split_fraction_above_1": Case(
        "ingest",
        ("params.yaml", "split.train=1.5", "must be a fraction in (0, 1) or a positive row count"),
        {"split.train": 1.5},
    ),
    "split_fractions_sum_above_1": Case(
        "ingest",
        ("params.yaml", "split=", "train+val+test = 1.3 > 1", "must sum to at most 1"),
        {"split.train": 0.9, "split.val": 0.2},
    ),
    "horizon_longer_than_test_split": Case(
        "validate",
        (
            "good.csv",
            "val has 120 rows, test has 120 rows",
            "val and test >= 130 rows each",
            "window.horizon=130",
            "the series needs at least 650 rows, it has 600",
        ),
        {"window.horizon": 130},
    ),
}


def panel_with(**changes: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    """Series ``a``, ``b``, ``c`` (each a ``series_frame`` of 600 rows) in one long file by ``sid``."""

    def build() -> pd.DataFrame:
        parts = [series_frame(seed=i).assign(sid=sid) for i, sid in enumerate("abc")]
        df = pd.concat(parts, ignore_index=True)[["sid", "timestamp", "y", "temp"]]
        for change in changes.values():
            df = change(df)
        return df

    return build


def _drop_rows(sid: str, rows: slice) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        return df.drop(index=df.index[df["sid"] == sid][rows])

    return change


ON_PANEL = {**ON_BAD, "data.id_column": "sid"}

PANEL_CASES = {
    "panel_gaps_in_two_series": Case(
        "validate",
        (
            "bad.csv",
            "columns ['y', 'temp']: 2 of 3 series have gaps",
            "longer than data.fill_gaps=2",
            "b (5 missing steps from 2024-01-05 04:00:00 to 2024-01-05 08:00:00 in 'y')",
            "c (3 missing steps from 2024-01-01 10:00:00 to 2024-01-01 12:00:00 in 'y')",
            "or raise data.fill_gaps",
        ),
        ON_PANEL,
        {BAD: panel_with(b=_drop_rows("b", slice(100, 105)), c=_drop_rows("c", slice(10, 13)))},
    ),
    "panel_series_too_short": Case(
        "validate",
        ("bad.csv", "1 of 3 series are too short", "each needs at least 50 rows", "too short: c (40 rows)"),
        ON_PANEL,
        {BAD: panel_with(c=_drop_rows("c", slice(40, None)))},
    ),
    "panel_id_column_missing": Case(
        "ingest",
        (
            "bad.csv",
            "series id column 'sid' not found",
            "columns are ['timestamp', 'y', 'temp']",
            "data.id_column",
        ),
        ON_PANEL,
        {BAD: series_frame},
    ),
    "m4_hourly_without_its_columns": Case(
        "ingest",
        (
            "data.path='builtin:m4-hourly' is a panel of 414 series",
            "add -S data.id_column=unique_id -S data.target=value -S 'data.covariates=[]'",
        ),
        {"data.path": "builtin:m4-hourly"},
    ),
}


# ---------------------------------------------------------------------------- in-process: every rule


def refuse_in_process(checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case) -> None:
    """Apply ``case``, run the stages up to ``case.stage`` in-process, assert it refused cleanly."""
    for rel, build in case.files.items():
        checkout.write(rel, build())
    checkout.set_params(**case.params)
    guarded = (*GUARDED, "data/raw") if case.stage == "ingest" else GUARDED
    before = checkout.digest(guarded)
    for stage in STAGE_ORDER[: STAGE_ORDER.index(case.stage)]:
        ok = in_process(checkout.root, capsys, stage)
        assert ok.returncode == 0, ok

    run = in_process(checkout.root, capsys, case.stage)

    assert run.returncode == 1, run
    assert_user_error(run, *case.expected)
    assert checkout.digest(guarded) == before, "a refused input changed the previous outputs"


@pytest.mark.parametrize("case", FILE_CASES.values(), ids=FILE_CASES.keys())
def test_unusable_file_is_refused_naming_the_file_and_keeping_outputs(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


@pytest.mark.parametrize("case", COLUMN_CASES.values(), ids=COLUMN_CASES.keys())
def test_bad_column_is_refused_naming_column_values_and_expectation(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


@pytest.mark.parametrize("case", TIME_CASES.values(), ids=TIME_CASES.keys())
def test_bad_timestamps_are_refused_naming_the_timestamps_and_rows(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


@pytest.mark.parametrize("case", SIZE_CASES.values(), ids=SIZE_CASES.keys())
def test_too_few_rows_are_refused_saying_how_many_are_needed(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


@pytest.mark.parametrize("case", PARAM_CASES.values(), ids=PARAM_CASES.keys())
def test_bad_param_is_refused_naming_key_value_and_expectation(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


@pytest.mark.parametrize("case", PANEL_CASES.values(), ids=PANEL_CASES.keys())
def test_bad_panel_is_refused_naming_every_bad_series(
    checkout: Repo, capsys: pytest.CaptureFixture[str], case: Case
) -> None:
    refuse_in_process(checkout, capsys, case)


UNKNOWN_KEY = ("params.yaml", "unknown key 'train.epocs'", "allowed keys here are", "'epochs'")


@pytest.mark.parametrize("stage", stages.NAMES)
def test_unknown_param_key_fails_every_stage_at_config_load(
    checkout: Repo, capsys: pytest.CaptureFixture[str], stage: str
) -> None:
    checkout.set_params(**{"train.epocs": 3})
    before = checkout.digest()

    run = in_process(checkout.root, capsys, stage)

    assert run.returncode == 1, run
    assert_user_error(run, *UNKNOWN_KEY)
    assert checkout.digest() == before


# ---------------------------------------------------------------------------- subprocess: one per stage


def _constant_temp_on_train_rows(df: pd.DataFrame) -> None:
    # validate checks the target varies over the whole series; window fits the scaler on the
    # train rows (60 %), where this covariate is flat
    df.loc[:359, "temp"] = 21.0


@dataclass(frozen=True)
class StageCase:
    """One bad input for ``stage``, run as the user runs it, and what must stay as it was."""

    stage: str  # the stage that refuses it
    command: tuple[str, ...]  # ("dvc", "repro", <target>) or ("tsforecast", <stage>)
    expected: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Callable[[], str | bytes | pd.DataFrame]] = field(default_factory=dict)
    # outputs the failure must not touch (the stages before it may rewrite their own)
    guarded: tuple[str, ...] = GUARDED
    exit_code: int = 1


REPRO = ("dvc", "repro", "evaluate")

STAGE_CASES = {
    "ingest": StageCase(
        "ingest",
        REPRO,
        FILE_CASES["semicolon_delimited"].expected,
        ON_BAD,
        FILE_CASES["semicolon_delimited"].files,
        guarded=("data/raw", *GUARDED),
    ),
    "validate": StageCase(
        "validate",
        REPRO,
        COLUMN_CASES["nan_run_longer_than_fill_gaps"].expected,
        ON_BAD,
        COLUMN_CASES["nan_run_longer_than_fill_gaps"].files,
    ),
    "window": StageCase(
        "window",
        REPRO,
        (
            "column(s) ['temp'] are constant over the train rows (std=0)",
            "check data.target and data.covariates",
        ),
        ON_BAD,
        {BAD: frame_with(flat=_constant_temp_on_train_rows)},
        guarded=("data/prepared", "models", "metrics"),
    ),
    "train": StageCase(
        "train",
        REPRO,
        ("train.device='cuda:99'", "CUDA device"),  # none here; too few on a GPU machine
        {"train.device": "cuda:99"},
    ),
    "evaluate": StageCase(
        "evaluate",
        REPRO,
        ("evaluate.seasonal_period=48 exceeds window.input_size=24", "raise input_size or lower the period"),
        {"evaluate.seasonal_period": 48},
        guarded=(*GUARDED, "plots"),
    ),
    "backtest": StageCase(
        "backtest",
        ("dvc", "repro", "backtest"),
        ("backtest.n_cutoffs=1000", "forecast origins", "use 1 <= n_cutoffs <= "),
        {"backtest.n_cutoffs": 1000},
        guarded=(*GUARDED, "plots"),
    ),
    # DVC would run register against MLflow first; by hand, params changed since train
    "register": StageCase(
        "register",
        ("tsforecast", "register"),
        (
            "models/model.pt was trained for (input_size, horizon)=(24, 6)",
            "window.input_size=24, window.horizon=12",
        ),
        {"window.horizon": 12},
        guarded=(*GUARDED, "reports/registered.json", "mlflow.db", "mlruns"),
    ),
    "forecast": StageCase(
        "forecast",
        ("tsforecast", "forecast"),
        ("the local model (models/model.pt) reads columns ['y', 'temp']", "name ['y']", "run `dvc repro`"),
        {"data.covariates": []},
        guarded=(*GUARDED, "forecasts", "plots"),
    ),
}


def _lock_entries(repo: Repo, names: list[str]) -> dict[str, Any]:
    lock = yaml.safe_load((repo.root / "dvc.lock").read_text())
    return {s: lock["stages"].get(s) for s in names}


def test_every_stage_has_a_subprocess_case() -> None:
    assert list(STAGE_CASES) == list(stages.NAMES)


@pytest.mark.slow  # dvc or the console script in a subprocess: 5-30 s each
@pytest.mark.parametrize("case", STAGE_CASES.values(), ids=STAGE_CASES.keys())
def test_bad_input_reaches_the_user_as_one_line_and_keeps_the_outputs(repo: Repo, case: StageCase) -> None:
    for rel, build in case.files.items():
        repo.write(rel, build())
    repo.set_params(**case.params)
    before = repo.digest(case.guarded)
    later = list(stages.NAMES[stages.NAMES.index(case.stage) + 1 :])
    lock_before = _lock_entries(repo, [case.stage, *later])

    tool, *args = case.command
    run = repo.dvc(*args) if tool == "dvc" else repo.tsforecast(*args)

    assert_user_error(run, *case.expected)
    if tool == "dvc":  # dvc exits 255 and names the stage's own exit code
        assert (
            f"failed to run: tsforecast {case.stage}, exited with {case.exit_code}" in run.stdout + run.stderr
        ), run
    else:
        assert run.returncode == case.exit_code, run
    assert repo.digest(case.guarded) == before, "a refused input changed the previous outputs"
    assert _lock_entries(repo, [case.stage, *later]) == lock_before
    if tool == "dvc":
        assert f"Running stage '{case.stage}'" in run.stdout, run
        assert not [s for s in later if f"Running stage '{s}'" in run.stdout], run
        status = repo.dvc("status", "--json", "--with-deps", case.command[-1])
        assert status.returncode == 0, status
        assert case.stage in json.loads(status.stdout or "{}"), "the failed stage must stay out of date"


@pytest.mark.slow
def test_unknown_param_key_through_dvc_stops_the_first_stage_that_reads_the_section(repo: Repo) -> None:
    """DVC re-runs only the stages whose params changed: ``split`` is read first by validate."""
    repo.set_params(**{"split.trian": 0.6})
    before = repo.digest()
    lock_before = _lock_entries(repo, list(STAGE_ORDER))

    run = repo.dvc("repro", "evaluate")

    assert_user_error(run, *PARAM_CASES["unknown_key"].expected)
    assert "Running stage 'ingest'" not in run.stdout, run
    assert "Running stage 'validate'" in run.stdout, run
    assert "Running stage 'train'" not in run.stdout, run
    assert repo.digest() == before
    assert _lock_entries(repo, list(STAGE_ORDER)) == lock_before
