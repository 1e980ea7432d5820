"""Property tests of the chronological split and the sliding windows (tsforecast.dataset.window).

For any series length, lookback L, horizon H, stride and split (fractions or row counts,
inputs looking back or not): no window's target crosses its split's end, no row a train or
val window reads is a test target, the shapes and counts follow the formulas, windows are
views of the series, and a split that cannot hold its windows fails saying how many rows
it needs.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.window import SplitBounds, sliding_windows, split_rows, window_starts
from tsforecast.errors import DataError

PROPS = settings(max_examples=200, deadline=None)
PARTS = ("train", "val", "test")


@st.composite
def windows(draw: st.DrawFn) -> WindowConfig:
    return WindowConfig(
        input_size=draw(st.integers(1, 60)),
        horizon=draw(st.integers(1, 30)),
        stride=draw(st.integers(1, 7)),
    )


@st.composite
def splits(draw: st.DrawFn) -> SplitConfig:
    lookback = draw(st.sampled_from(["auto", True, False]))
    if draw(st.booleans()):
        train, val, test = (draw(st.integers(1, 400)) for _ in PARTS)
        return SplitConfig(train=train, val=val, test=test, lookback=lookback)
    train = draw(st.floats(0.01, 0.97))
    val = draw(st.floats(0.01, 0.99 - train))
    test = draw(st.floats(0.01, 1.0 - train - val))
    return SplitConfig(train=train, val=val, test=test, lookback=lookback)


def needs(split: SplitConfig, window: WindowConfig) -> tuple[int, int]:
    """Rows train needs, rows val and test need each (the windowing contract)."""
    L, H = window.input_size, window.horizon
    return L + H, (H if split.inputs_look_back else L + H)


def sizes(n_rows: int, split: SplitConfig) -> list[int]:
    if split.uses_counts:
        return [int(split.train), int(split.val), int(split.test)]
    return [int(n_rows * f) for f in (split.train, split.val, split.test)]


def valid(n_rows: int, split: SplitConfig, window: WindowConfig) -> bool:
    n_train, n_val, n_test = sizes(n_rows, split)
    need_train, need_eval = needs(split, window)
    fits = n_train + n_val + n_test <= n_rows
    return fits and n_train >= need_train and n_val >= need_eval and n_test >= need_eval


def rows_of(starts: np.ndarray, L: int, H: int) -> tuple[set[int], set[int]]:
    """(input rows, target rows) that the windows starting at ``starts`` read."""
    inputs = {int(s) + i for s in starts for i in range(L)}
    targets = {int(s) + L + h for s in starts for h in range(H)}
    return inputs, targets


@PROPS
@given(n_rows=st.integers(1, 1500), split=splits(), window=windows())
def test_split_succeeds_exactly_when_every_part_can_hold_a_window(
    n_rows: int, split: SplitConfig, window: WindowConfig
) -> None:
    if valid(n_rows, split, window):
        bounds = split_rows(n_rows, split, window)
        n_train, n_val, n_test = sizes(n_rows, split)
        assert bounds.train == (0, n_train)
        assert bounds.val == (n_train, n_train + n_val)
        assert bounds.test == (n_train + n_val, n_train + n_val + n_test)
        assert bounds.test[1] <= n_rows
        assert bounds.look_back == split.inputs_look_back
    else:
        with pytest.raises(DataError):
            split_rows(n_rows, split, window)


@PROPS
@given(n_rows=st.integers(1, 1500), split=splits(), window=windows())
def test_a_split_too_small_for_its_windows_says_how_many_rows_are_needed(
    n_rows: int, split: SplitConfig, window: WindowConfig
) -> None:
    assume(not valid(n_rows, split, window))
    with pytest.raises(DataError) as err:
        split_rows(n_rows, split, window)
    message = str(err.value)
    n_train, n_val, n_test = sizes(n_rows, split)
    if n_train + n_val + n_test > n_rows:
        assert f"= {n_train + n_val + n_test} rows but the series has {n_rows}" in message
        return
    need_train, need_eval = needs(split, window)
    assert f"train needs >= input_size+horizon = {need_train} rows" in message
    assert f"val and test >= {need_eval} rows each" in message
    if split.uses_counts:
        assert f"at least {need_train + 2 * need_eval} rows in all" in message
    else:
        found = re.search(r"the series needs at least (\d+) rows, it has (\d+)", message)
        assert found, message
        needed = int(found.group(1))
        assert int(found.group(2)) == n_rows
        assert needed > n_rows


def named_row_count(split: SplitConfig, window: WindowConfig) -> int:
    with pytest.raises(DataError) as err:
        split_rows(1, split, window)
    found = re.search(r"the series needs at least (\d+) rows", str(err.value))
    assert found, str(err.value)
    return int(found.group(1))


@PROPS
@example(
    split=SplitConfig(train=0.35, val=0.3, test=0.3, lookback=True),
    window=WindowConfig(input_size=118, horizon=1),
)
@example(split=SplitConfig(train=0.5, val=0.25, test=0.01), window=WindowConfig(input_size=43, horizon=30))
@given(split=splits(), window=windows())
def test_the_row_count_named_for_a_fraction_split_is_the_least_that_fits(
    split: SplitConfig, window: WindowConfig
) -> None:
    assume(not split.uses_counts and not valid(1, split, window))
    needed = named_row_count(split, window)
    assert valid(needed, split, window), f"{needed} rows are named, but they do not fit"
    assert not valid(needed - 1, split, window), f"{needed} rows are named, but {needed - 1} fit"


@st.composite
def valid_cases(draw: st.DrawFn) -> tuple[int, SplitBounds, WindowConfig]:
    """A window, a split and a length that fits it (built to fit, not filtered)."""
    window = draw(windows())
    split = draw(splits())
    need_train, need_eval = needs(split, window)
    if split.uses_counts:
        split = SplitConfig(
            train=need_train + draw(st.integers(0, 200)),
            val=need_eval + draw(st.integers(0, 100)),
            test=need_eval + draw(st.integers(0, 100)),
            lookback=split.lookback,
        )
        n_rows = int(split.train) + int(split.val) + int(split.test) + draw(st.integers(0, 50))
    else:
        fracs = (split.train, split.val, split.test)
        least = max(
            np.ceil(need / f) for need, f in zip((need_train, need_eval, need_eval), fracs, strict=True)
        )
        n_rows = int(least) + draw(st.integers(0, 300))
    assume(valid(n_rows, split, window))  # float rounding of n * fraction, rarely
    return n_rows, split_rows(n_rows, split, window), window


@PROPS
@given(case=valid_cases())
def test_no_window_target_crosses_the_end_of_its_split(case: tuple[int, SplitBounds, WindowConfig]) -> None:
    _, bounds, w = case
    L, H = w.input_size, w.horizon
    for part in PARTS:
        start, end = bounds.rows(part)
        starts = window_starts(bounds, part, L, H, w.stride)
        assert len(starts) > 0
        assert starts.min() + L >= start, f"a {part} target starts before the {part} rows"
        assert starts.max() + L + H <= end, f"a {part} target crosses the end of {part}"
        if part == "train" or not bounds.look_back:
            assert starts.min() >= start, f"a {part} input reads rows before {part}"
        assert starts.min() >= 0


@PROPS
@given(case=valid_cases())
def test_train_windows_read_only_train_rows(case: tuple[int, SplitBounds, WindowConfig]) -> None:
    _, bounds, w = case
    L, H = w.input_size, w.horizon
    inputs, targets = rows_of(window_starts(bounds, "train", L, H, w.stride), L, H)
    assert max(inputs | targets) < bounds.train[1]
    assert min(inputs | targets) >= bounds.train[0]


@PROPS
@given(case=valid_cases())
def test_no_test_target_is_read_by_a_train_or_val_window(case: tuple[int, SplitBounds, WindowConfig]) -> None:
    _, bounds, w = case
    L, H = w.input_size, w.horizon
    _, test_targets = rows_of(window_starts(bounds, "test", L, H), L, H)
    for part in ("train", "val"):
        inputs, targets = rows_of(window_starts(bounds, part, L, H, w.stride), L, H)
        assert not (inputs | targets) & test_targets, f"a {part} window reads a test target"
    _, val_targets = rows_of(window_starts(bounds, "val", L, H), L, H)
    train_inputs, train_targets = rows_of(window_starts(bounds, "train", L, H, w.stride), L, H)
    assert not (train_inputs | train_targets) & val_targets, "a train window reads a val target"


@PROPS
@given(case=valid_cases())
def test_window_counts_follow_the_formula(case: tuple[int, SplitBounds, WindowConfig]) -> None:
    _, bounds, w = case
    L, H, S = w.input_size, w.horizon, w.stride
    n_train = bounds.train[1] - bounds.train[0]
    assert len(window_starts(bounds, "train", L, H, S)) == (n_train - L - H) // S + 1
    for part in ("val", "test"):
        start, end = bounds.rows(part)
        first = start - L if bounds.look_back else start
        expected = end - L - H - first + 1  # stride 1: every target of the split is scored
        starts = window_starts(bounds, part, L, H, S)
        assert len(starts) == expected
        assert np.array_equal(starts, np.arange(first, end - L - H + 1))
        if bounds.look_back:  # every row of the split is some window's first target
            assert {int(s) + L for s in starts} == set(range(start, end - H + 1))


@PROPS
@given(
    n_rows=st.integers(1, 300),
    n_cols=st.integers(1, 4),
    L=st.integers(1, 60),
    H=st.integers(1, 30),
)
def test_sliding_windows_are_views_with_the_documented_shapes(
    n_rows: int, n_cols: int, L: int, H: int
) -> None:
    series = np.arange(n_rows * n_cols, dtype=np.float32).reshape(n_rows, n_cols)
    if n_rows < L + H:
        with pytest.raises(DataError, match=rf"series has {n_rows} rows; a window needs L\+H = {L + H}"):
            sliding_windows(series, L, H)
        return
    X, Y = sliding_windows(series, L, H)
    n = n_rows - L - H + 1
    assert X.shape == (n, L, n_cols)
    assert Y.shape == (n, H)
    assert np.shares_memory(X, series) and np.shares_memory(Y, series)
    assert not X.flags.owndata and not Y.flags.owndata
    for i in {0, n // 2, n - 1}:
        assert np.array_equal(X[i], series[i : i + L])
        assert np.array_equal(Y[i], series[i + L : i + L + H, 0])


@pytest.mark.parametrize("shape", [(12,), (3, 4, 2), (2, 3, 4, 1)])
def test_sliding_windows_refuse_a_series_that_is_not_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"series must be 2-D \(rows, columns\)"):
        sliding_windows(np.zeros(shape, dtype=np.float32), 2, 1)
