"""Property tests of the chronological split and the windows of a panel (S >= 1 series).

For any series lengths, lookback L, horizon H, stride and split (fractions or row counts, anchored
at each series' start or end, inputs looking back or not): a series is too short exactly when a
part cannot hold its windows, and the rows named as needed are the least that fit; no window's
target crosses its part's end, no row a train or val window reads is a test target, no window
leaves its series, and the counts and shapes follow the formulas. One series' split error (what
validate says) names the rows it needs. The expectations come from a small reference of the
windowing contract written here, not from the code under test.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.panel import Panel
from tsforecast.dataset.split import Anchor, needed_rows, split_bounds, split_rows
from tsforecast.errors import DataError

PROPS = settings(max_examples=200, deadline=None)
PARTS = ("train", "val", "test")
Case = tuple[Panel, SplitConfig]


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
    test = draw(st.floats(0.01, max(0.01, 1.0 - train - val)))  # 1 - 0.97 - 0.02 rounds below 0.01
    return SplitConfig(train=train, val=val, test=test, lookback=lookback)


anchors = st.sampled_from(["start", "end"])


# ---------------------------------------------------------------- the reference


def needs(split: SplitConfig, window: WindowConfig) -> tuple[int, int]:
    """Rows train needs, rows val and test need each (the windowing contract)."""
    L, H = window.input_size, window.horizon
    return L + H, (H if split.inputs_look_back else L + H)


def counts_too_small(split: SplitConfig, window: WindowConfig) -> bool:
    need_train, need_eval = needs(split, window)
    return split.uses_counts and (split.train < need_train or min(split.val, split.test) < need_eval)


def sizes(n_rows: int, split: SplitConfig, anchor: Anchor = "start") -> list[int]:
    """Rows of train, val and test: counts from the first row or, anchored at the end, train is
    every row before val; fractions of the length, rounded down."""
    if split.uses_counts:
        train, val, test = int(split.train), int(split.val), int(split.test)
        return [max(n_rows - val - test, 0) if anchor == "end" else train, val, test]
    return [int(n_rows * f) for f in (split.train, split.val, split.test)]


def valid(n_rows: int, split: SplitConfig, window: WindowConfig, anchor: Anchor = "start") -> bool:
    n_train, n_val, n_test = sizes(n_rows, split, anchor)
    need_train, need_eval = needs(split, window)
    if split.uses_counts:
        need_train = max(need_train, int(split.train))  # anchored at the end, train keeps split.train
    fits = n_train + n_val + n_test <= n_rows
    return fits and n_train >= need_train and n_val >= need_eval and n_test >= need_eval


# ---------------------------------------------------------------- the split


@PROPS
@given(
    lengths=st.lists(st.integers(1, 1500), min_size=1, max_size=4),
    split=splits(),
    window=windows(),
    anchor=anchors,
)
def test_a_series_is_too_short_exactly_when_a_part_cannot_hold_its_windows(
    lengths: list[int], split: SplitConfig, window: WindowConfig, anchor: Anchor
) -> None:
    if counts_too_small(split, window):
        with pytest.raises(DataError, match=r"split row counts .* are too small for the window"):
            split_bounds(np.array(lengths), split, window, anchor)
        return
    bounds, short = split_bounds(np.array(lengths), split, window, anchor)
    assert bounds.shape == (len(lengths), 3, 2) and short.shape == (len(lengths),)
    for i, n in enumerate(lengths):
        assert bool(short[i]) is not valid(n, split, window, anchor)
        if not short[i]:
            n_train, n_val, n_test = sizes(n, split, anchor)
            edges = [0, n_train, n_train + n_val, n_train + n_val + n_test]
            assert bounds[i].tolist() == [[edges[k], edges[k + 1]] for k in range(3)]
            assert bounds[i, 2, 1] <= n


@PROPS
@given(n_rows=st.integers(1, 1500), split=splits(), window=windows())
def test_split_succeeds_exactly_when_every_part_can_hold_a_window(
    n_rows: int, split: SplitConfig, window: WindowConfig
) -> None:
    if valid(n_rows, split, window):
        bounds, _ = split_bounds(np.array([n_rows]), split, window, "start")
        np.testing.assert_array_equal(split_rows(n_rows, split, window), bounds[0])
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
    assert needed == needed_rows(split, window)
    assert valid(needed, split, window), f"{needed} rows are named, but they do not fit"
    assert not valid(needed - 1, split, window), f"{needed} rows are named, but {needed - 1} fit"


@PROPS
@given(split=splits(), window=windows(), anchor=anchors)
def test_the_rows_a_series_needs_are_the_least_that_fit(
    split: SplitConfig, window: WindowConfig, anchor: Anchor
) -> None:
    assume(not counts_too_small(split, window))
    need = needed_rows(split, window)
    _, short = split_bounds(np.array([need - 1, need]), split, window, anchor)
    assert short.tolist() == [True, False]


# ---------------------------------------------------------------- the windows


def panel_of(lengths: list[int], split: SplitConfig, window: WindowConfig, anchor: Anchor) -> Panel:
    """A panel of series of ``lengths`` whose every row holds its own index in the buffer."""
    bounds, short = split_bounds(np.array(lengths), split, window, anchor)
    assert not short.any()
    S = len(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Panel(
        ids=pd.Index([f"s{i}" for i in range(S)]),
        columns=("y",),
        values=np.arange(offsets[-1], dtype=np.float32)[:, None],  # exact below 2**24
        offsets=offsets,
        bounds=bounds,
        mean=np.zeros((S, 1)),
        std=np.ones((S, 1)),
        first=np.full(S, np.datetime64("2024-01-01", "ns")),
        freq="h",
        input_size=window.input_size,
        horizon=window.horizon,
        stride=window.stride,
        look_back=split.inputs_look_back,
    )


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    """A panel of 1 to 4 series whose split and window fit every series (built to fit, not filtered)."""
    window = draw(windows())
    split = draw(splits())
    anchor = draw(anchors)
    need_train, need_eval = needs(split, window)
    if split.uses_counts:
        split = SplitConfig(
            train=need_train + draw(st.integers(0, 200)),
            val=need_eval + draw(st.integers(0, 100)),
            test=need_eval + draw(st.integers(0, 100)),
            lookback=split.lookback,
        )
        least = int(split.train) + int(split.val) + int(split.test)
        lengths = [least + draw(st.integers(0, 50)) for _ in range(draw(st.integers(1, 4)))]
    else:
        fracs = (split.train, split.val, split.test)
        least = max(np.ceil(k / f) for k, f in zip((need_train, need_eval, need_eval), fracs, strict=True))
        lengths = [int(least) + draw(st.integers(0, 300)) for _ in range(draw(st.integers(1, 4)))]
    assume(all(valid(n, split, window, anchor) for n in lengths))  # float rounding of n * fraction, rarely
    return panel_of(lengths, split, window, anchor), split


def rows_read(panel: Panel, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series (K,), and the local rows (K, L) the inputs and (K, H) the targets of ``part`` read."""
    idx = panel.window_index(part)
    X, Y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    base = panel.offsets[idx[:, 0]][:, None]
    return idx[:, 0], X[:, :, 0].astype(np.int64) - base, Y.astype(np.int64) - base


@PROPS
@given(case=valid_cases())
def test_no_window_target_crosses_the_end_of_its_split(case: Case) -> None:
    panel, _ = case
    L, H = panel.input_size, panel.horizon
    for part in PARTS:
        s, starts = panel.window_index(part).T
        start, end = panel.part_bounds(part)[s].T
        assert (np.bincount(s, minlength=panel.n_series) > 0).all(), f"a series has no {part} window"
        assert (starts + L >= start).all(), f"a {part} target starts before the {part} rows"
        assert (starts + L + H <= end).all(), f"a {part} target crosses the end of {part}"
        if part == "train" or not panel.look_back:
            assert (starts >= start).all(), f"a {part} input reads rows before {part}"
        assert (starts >= 0).all()


@PROPS
@given(case=valid_cases())
def test_no_window_leaves_its_series(case: Case) -> None:
    panel, _ = case
    for part in PARTS:
        s, inputs, targets = rows_read(panel, part)
        rows = np.concatenate([inputs, targets], axis=1)  # (K, L+H) local rows
        assert (rows >= 0).all() and (rows < panel.lengths[s][:, None]).all()
        assert (np.diff(rows, axis=1) == 1).all()  # consecutive rows of one series


@PROPS
@given(case=valid_cases())
def test_train_windows_read_only_train_rows(case: Case) -> None:
    panel, _ = case
    s, inputs, targets = rows_read(panel, "train")
    start, end = panel.part_bounds("train")[s].T
    assert (inputs.min(axis=1) >= start).all() and (targets.max(axis=1) < end).all()


@PROPS
@given(case=valid_cases())
def test_no_test_target_is_read_by_a_train_or_val_window(case: Case) -> None:
    panel, _ = case
    s_test, _, test_targets = rows_read(panel, "test")
    first_test_target = np.full(panel.n_series, np.iinfo(np.int64).max)
    np.minimum.at(first_test_target, s_test, test_targets.min(axis=1))
    for part in ("train", "val"):
        s, inputs, targets = rows_read(panel, part)
        last_read = np.maximum(inputs.max(axis=1), targets.max(axis=1))
        assert (last_read < first_test_target[s]).all(), f"a {part} window reads a test target"
    s_val, _, val_targets = rows_read(panel, "val")
    first_val_target = np.full(panel.n_series, np.iinfo(np.int64).max)
    np.minimum.at(first_val_target, s_val, val_targets.min(axis=1))
    s, _, train_targets = rows_read(panel, "train")
    assert (train_targets.max(axis=1) < first_val_target[s]).all(), "a train window reads a val target"


@PROPS
@given(case=valid_cases())
def test_window_counts_follow_the_formula(case: Case) -> None:
    panel, _ = case
    L, H, stride = panel.input_size, panel.horizon, panel.stride
    train = panel.part_bounds("train")
    expected = (train[:, 1] - train[:, 0] - L - H) // stride + 1
    np.testing.assert_array_equal(panel.windows("train").count, expected)
    for part in ("val", "test"):
        for i, (start, end) in enumerate(panel.part_bounds(part).tolist()):
            first = start - L if panel.look_back else start
            idx = panel.window_index(part)
            starts = idx[idx[:, 0] == i, 1]
            assert panel.windows(part).count[i] == end - L - H - first + 1  # stride 1: every target scored
            np.testing.assert_array_equal(starts, np.arange(first, end - L - H + 1))
            if panel.look_back:  # every row of the part is some window's first target
                assert set((starts + L).tolist()) == set(range(start, end - H + 1))


@PROPS
@given(case=valid_cases(), data=st.data())
def test_gathered_windows_have_the_documented_shapes_and_rows(case: Case, data: st.DataObject) -> None:
    panel, _ = case
    L, H = panel.input_size, panel.horizon
    part = data.draw(st.sampled_from(PARTS))
    ranges = panel.windows(part)
    assert ranges.first.shape == ranges.count.shape == (panel.n_series,)  # per series, not per window
    idx = panel.window_index(part)
    assert idx.shape == (ranges.total, 2) and idx.dtype == np.int64
    pick = idx[data.draw(st.lists(st.integers(0, len(idx) - 1), min_size=1, max_size=8))]
    X, Y = panel.gather(pick[:, 0], pick[:, 1])
    assert X.shape == (len(pick), L, 1) and Y.shape == (len(pick), H)
    for (s, start), x, y in zip(pick, X, Y, strict=True):
        row = panel.offsets[s] + start
        np.testing.assert_array_equal(x, panel.values[row : row + L])
        np.testing.assert_array_equal(y, panel.values[row + L : row + L + H, 0])  # the target is column 0


@pytest.mark.parametrize("shapes", [((2,), (3,)), ((2, 1), (2, 1)), ((), ())])
def test_gather_refuses_indices_that_are_not_1d_of_one_length(shapes: tuple[tuple[int, ...], ...]) -> None:
    panel = panel_of(
        [40], SplitConfig(train=0.6, val=0.2, test=0.2), WindowConfig(input_size=2, horizon=1), "start"
    )
    s, starts = (np.zeros(shape, dtype=np.int64) for shape in shapes)
    with pytest.raises(ValueError, match=r"must be 1-D of one length"):
        panel.gather(s, starts)
