"""The window stage: validated data -> the panel in data/prepared/, for one series and for many.

One series is a panel of one: each test that holds for both runs over S in {1, 3} series, through
``run_window`` and ``load_panel``. Windows are read back with ``Panel.window_index`` and
``Panel.gather``; the data's values say which series and row they come from
(:func:`tests.helpers.validated.coded_frame`), so the expected windows are written out. The general
laws (no leakage, counts, shapes) are Hypothesis properties in tests/reliability/test_properties.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers.repos import Repo, validate
from tests.helpers.series_frames import N, frame_of
from tests.helpers.validated import coded_frame, trend_frame, validated_repo
from tsforecast.dataset.panel import PARTS, Panel, load_panel
from tsforecast.dataset.window import WindowResult, run_window
from tsforecast.errors import DataError
from tsforecast.paths import VALIDATED_FILE, Paths

S_VALUES = pytest.mark.parametrize("n_series", [1, 3])
STAGE = {"window": {"input_size": 12, "horizon": 4, "stride": 2}}  # fractions 0.6/0.2/0.2
COUNTS = {"split": {"train": 20, "val": 6, "test": 6}, "window": {"input_size": 4, "horizon": 2, "stride": 3}}


def window(repo: Repo, **data: Any) -> WindowResult:
    """Run the window stage on ``repo`` (``data``: overrides of the data section)."""
    c = repo.cfg
    return run_window(c.data.model_copy(update=data), c.split, c.window, repo.paths)


def prepared(tmp_path: Path, frame: pd.DataFrame, **sections: dict[str, Any]) -> tuple[WindowResult, Panel]:
    """The window stage's result and the panel it saved, for ``frame`` as validated data."""
    repo = validated_repo(tmp_path, frame, **sections)
    return window(repo), load_panel(repo.paths.prepared)


def series_codes(panel: Panel) -> np.ndarray:
    """(S,) ``i`` of each panel series ``s<i>`` (0 for one series)."""
    return np.array([int(s[1:]) if panel.n_series > 1 else 0 for s in panel.ids])


def re_list(items: list[str]) -> str:
    """``items`` as a regex matching their printed list."""
    return r"\[" + ", ".join(f"'{x}'" for x in items) + r"\]"


# ---------------------------------------------------------------- what is saved


@S_VALUES
def test_window_saves_every_series_as_validated(make_repo, n_series: int) -> None:
    frame = frame_of(n_series)
    if n_series > 1:  # one series shorter than the others
        frame = frame[~((frame["sid"] == "s1") & (frame["timestamp"] > pd.Timestamp("2000-01-02 11:00")))]
    repo = make_repo(frame, **({"id_column": "sid"} if n_series > 1 else {}))
    validate(repo)
    result = window(repo)
    panel = load_panel(repo.paths.prepared)

    validated = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    lengths = {"y": N} if n_series == 1 else {"s0": N, "s1": 35, "s2": N}
    assert dict(zip(panel.ids, panel.lengths.tolist(), strict=True)) == lengths  # one series: implicit id
    assert panel.id_column == (None if n_series == 1 else "sid")
    for i, sid in enumerate(panel.ids):
        own = validated if n_series == 1 else validated[validated["sid"] == sid]
        np.testing.assert_allclose(panel.series(i)[:, 0], own["y"], rtol=1e-6)
        pd.testing.assert_index_equal(
            panel.timestamps(i),
            pd.DatetimeIndex(own["timestamp"]).as_unit("ns"),
            check_names=False,
            check_freq=False,
        )
    assert panel.freq == "h" and panel.columns == ("y",)
    rows = (24, 8, 8) if n_series == 1 else (24 + 21 + 24, 8 + 7 + 8, 8 + 7 + 8)  # floor(0.6 n), floor(0.2 n)
    assert (result.n_series, result.n_rows) == (n_series, sum(lengths.values()))
    assert (result.n_train, result.n_val, result.n_test) == rows


@S_VALUES
def test_window_then_load_panel_round_trips(tmp_path: Path, n_series: int) -> None:
    frame = trend_frame([120] * n_series)
    result, panel = prepared(tmp_path, frame, **STAGE)

    assert panel.columns == ("y", "temp")  # target first, then covariates; others dropped
    assert (panel.input_size, panel.horizon, panel.stride, panel.freq) == (12, 4, 2, "h")
    assert panel.look_back is False  # fractions: lookback auto -> inputs stay in their part
    assert panel.bounds.tolist() == [[[0, 72], [72, 96], [96, 120]]] * n_series
    assert panel.values.dtype == np.float32 and panel.values.shape == (120 * n_series, 2)
    np.testing.assert_allclose(panel.values, frame[["y", "temp"]].to_numpy(), rtol=1e-6)  # raw, unscaled
    for i in range(n_series):
        stamps = frame["timestamp"].iloc[120 * i : 120 * (i + 1)]
        pd.testing.assert_index_equal(
            panel.timestamps(i), pd.DatetimeIndex(stamps).as_unit("ns"), check_names=False, check_freq=False
        )

    S = n_series
    assert (result.n_rows, result.n_train, result.n_val, result.n_test) == (120 * S, 72 * S, 24 * S, 24 * S)
    assert len(range(0, 72 - 16 + 1, 2)) == 29 and 24 - 16 + 1 == 9
    counts = (result.n_train_windows, result.n_val_windows, result.n_test_windows)
    assert counts == (29 * S, 9 * S, 9 * S)
    assert [panel.windows(p).count.tolist() for p in PARTS] == [[29] * S, [9] * S, [9] * S]
    meta = json.loads((tmp_path / "data" / "prepared" / "meta.json").read_text())
    assert meta["n_windows"] == {"train": 29 * S, "val": 9 * S, "test": 9 * S}
    assert not list(tmp_path.glob("data/.prepared.*")), "a temp dir of the atomic write was left"


@S_VALUES
def test_windows_hold_the_exact_rows_written_out(tmp_path: Path, n_series: int) -> None:
    _, panel = prepared(tmp_path, coded_frame([32] * n_series), **COUNTS)  # L=4, H=2, stride 3
    assert panel.bounds.tolist() == [[[0, 20], [20, 26], [26, 32]]] * n_series
    expected_starts = {
        "train": [0, 3, 6, 9, 12],  # every 3rd, wholly in the train rows
        "val": [16, 17, 18, 19, 20],  # stride 1 outside train; counts: inputs look back
        "test": [22, 23, 24, 25, 26],
    }
    for part, starts in expected_starts.items():
        idx = panel.window_index(part)
        assert idx[:, 0].tolist() == [i for i in range(n_series) for _ in starts]  # series-major
        assert idx[:, 1].tolist() == starts * n_series

    for i in range(n_series):
        X, Y = panel.gather(np.array([i, i]), np.array([3, 26]), scaled=False)
        assert X.shape == (2, 4, 2) and Y.shape == (2, 2)
        assert (X[0, :, 0] - 1000 * i).tolist() == [3, 4, 5, 6]
        assert (X[0, :, 1] - 1000 * i).tolist() == [503, 504, 505, 506]  # covariates ride along
        assert (Y[0] - 1000 * i).tolist() == [7, 8]  # the target is column 0 only
        assert (X[1, :, 0] - 1000 * i).tolist() == [26, 27, 28, 29]
        assert (Y[1] - 1000 * i).tolist() == [30, 31]  # the last test window ends at the last row


@S_VALUES
def test_without_look_back_val_and_test_inputs_stay_in_their_part(tmp_path: Path, n_series: int) -> None:
    split = {**COUNTS["split"], "lookback": False}
    _, panel = prepared(tmp_path, coded_frame([32] * n_series), split=split, window=COUNTS["window"])
    assert panel.window_index("val")[:, 1].tolist() == [20] * n_series
    assert panel.window_index("test")[:, 1].tolist() == [26] * n_series
    longer = replace(panel, input_size=15, horizon=6)
    assert longer.windows("train").count.tolist() == [0] * n_series  # too short: no windows, no error


@S_VALUES
def test_each_series_is_scaled_with_its_own_train_rows_only(tmp_path: Path, n_series: int) -> None:
    frame = trend_frame([120] * n_series)
    _, panel = prepared(tmp_path, frame, **STAGE)

    for i in range(n_series):
        own = frame[["y", "temp"]].to_numpy()[120 * i : 120 * (i + 1)]
        np.testing.assert_allclose(panel.mean[i], own[:72].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(panel.std[i], own[:72].std(axis=0), rtol=1e-5)  # ddof=0
        assert panel.mean[i, 0] != pytest.approx(own[:, 0].mean())  # the trend would leak the future
    idx = panel.window_index("test")
    s = idx[:, 0]
    raw_x, raw_y = panel.gather(s, idx[:, 1], scaled=False)
    X, Y = panel.gather(s, idx[:, 1])  # later rows are scaled with the train rows' scaler, not refitted
    np.testing.assert_allclose(X, (raw_x - panel.mean[s, None]) / panel.std[s, None], rtol=1e-5, atol=1e-5)
    assert Y.min() > 2.0  # the test rows lie far above the train rows' mean
    np.testing.assert_allclose(panel.inverse_target(s, Y), raw_y, rtol=1e-5)  # (B, H)
    np.testing.assert_allclose(panel.inverse_target(s, Y[:, 0]), raw_y[:, 0], rtol=1e-5)  # (B,)


@pytest.mark.parametrize(
    ("lengths", "anchor", "bounds"),
    [
        ([40], "auto", [[[0, 20], [20, 26], [26, 32]]]),  # one series: counted from its first row
        ([40], "end", [[[0, 28], [28, 34], [34, 40]]]),
        (
            [40, 35, 40],
            "auto",  # a panel: each series' last rows are test, train is every row before val
            [[[0, 28], [28, 34], [34, 40]], [[0, 23], [23, 29], [29, 35]], [[0, 28], [28, 34], [34, 40]]],
        ),
        ([40, 35, 40], "start", [[[0, 20], [20, 26], [26, 32]]] * 3),
    ],
)
def test_count_splits_anchor_at_the_start_for_one_series_and_at_the_end_for_a_panel(
    tmp_path: Path, lengths: list[int], anchor: str, bounds: list[Any]
) -> None:
    split = {**COUNTS["split"], "anchor": anchor}
    _, panel = prepared(tmp_path, coded_frame(lengths), split=split, window=COUNTS["window"])
    assert panel.bounds.tolist() == bounds


@pytest.mark.parametrize("part", PARTS)
def test_windows_never_cross_series(tmp_path: Path, part: str) -> None:
    split = {"train": 0.5, "val": 0.25, "test": 0.25}
    _, panel = prepared(tmp_path, coded_frame([40, 55, 70, 45, 60]), split=split)

    idx = panel.window_index(part)
    X, Y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    rows = np.concatenate([X[:, :, 0], Y], axis=1)  # (K, L+H): y = 1000 i + row
    series = np.floor(rows / 1000)
    assert len(idx) > 0 and (series == series[:, :1]).all()
    assert (np.diff(rows, axis=1) == 1).all()  # consecutive rows of it
    np.testing.assert_array_equal(series[:, 0], series_codes(panel)[idx[:, 0]])


# ---------------------------------------------------------------- what it refuses, and says


@S_VALUES
def test_a_constant_column_is_an_error_naming_it(tmp_path: Path, n_series: int) -> None:
    frame = trend_frame([120] * n_series)
    frame.loc[:71, "y"] = 5.0  # series 0: constant over its 72 train rows, varying afterwards
    frame.loc[:119, "temp"] = 21.5  # and a covariate constant throughout
    repo = validated_repo(tmp_path, frame, **STAGE)
    where = "" if n_series == 1 else r" of series s0 \(y, temp\)"
    with pytest.raises(
        DataError, match=rf"column\(s\) \['y', 'temp'\] are constant over the train rows \(std=0\){where}"
    ):
        window(repo)
    assert not repo.paths.prepared.exists()


@S_VALUES
def test_a_missing_column_is_named_with_the_columns_present(tmp_path: Path, n_series: int) -> None:
    repo = validated_repo(tmp_path, trend_frame([120] * n_series).drop(columns=["temp"]))
    present = ["timestamp", "y", "unused"] if n_series == 1 else ["sid", "timestamp", "y", "unused"]
    with pytest.raises(DataError, match=rf"column\(s\) \['temp'\] not found; columns are {re_list(present)}"):
        window(repo)


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        (
            [40],
            r"not enough rows for the split and the window: .*val has 8 rows.*"
            r"the series needs at least 80 rows, it has 40",
        ),
        (
            [120, 40, 120],
            r"1 of 3 series are too short for the split and the window: each needs at least 80 rows; "
            r"too short: s1 \(40 rows\)",
        ),
    ],
)
def test_too_few_rows_is_an_error_naming_the_sizes(tmp_path: Path, lengths: list[int], message: str) -> None:
    repo = validated_repo(tmp_path, trend_frame(lengths), **STAGE)
    with pytest.raises(DataError, match=message):
        window(repo)


@pytest.mark.parametrize(("n_series", "params_id"), [(3, "store"), (1, "sid")])
def test_window_refuses_data_validated_with_another_id_column(
    tmp_path: Path, n_series: int, params_id: str
) -> None:
    repo = validated_repo(tmp_path, coded_frame([40] * n_series))
    validated_id = None if n_series == 1 else "sid"
    with pytest.raises(
        DataError,
        match=rf"validated with id_column={validated_id!r}, params say data.id_column='{params_id}'",
    ):
        window(repo, id_column=params_id)


def test_window_without_validated_data_says_what_to_run(tmp_path: Path) -> None:
    repo = validated_repo(tmp_path, coded_frame([40]))
    empty = Repo(repo.cfg, Paths.from_root(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"not found; run `tsforecast validate`"):
        window(empty)


def test_load_without_the_window_stage_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"values\.npy not found; build the panel .*: run `tsforecast window`"
    ):
        load_panel(Paths.from_root(tmp_path).prepared)


# ---------------------------------------------------------------- the files


@S_VALUES
def test_window_replaces_an_older_prepared_dir_whole(tmp_path: Path, n_series: int) -> None:
    repo = validated_repo(tmp_path, trend_frame([120] * n_series), **STAGE)
    window(repo)
    (repo.paths.prepared / "stale.txt").write_text("from an older run")
    c = repo.cfg
    run_window(c.data, c.split, c.window.model_copy(update={"horizon": 6}), repo.paths)
    assert not (repo.paths.prepared / "stale.txt").exists()
    assert load_panel(repo.paths.prepared).horizon == 6


@S_VALUES
def test_load_panel_memory_maps_the_values(tmp_path: Path, n_series: int) -> None:
    repo = validated_repo(tmp_path, trend_frame([120] * n_series), **STAGE)
    window(repo)
    mapped = load_panel(repo.paths.prepared)
    assert isinstance(mapped.values, np.memmap)
    assert not mapped.values.flags.writeable
    read = load_panel(repo.paths.prepared, mmap=False)
    assert not isinstance(read.values, np.memmap)
    np.testing.assert_array_equal(np.asarray(mapped.values), read.values)
