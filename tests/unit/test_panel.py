"""The panel buffer, its split bounds, scalers and windows, and the global window sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.scale_data import synthetic_panel
from tsforecast.config import SplitConfig, WindowConfig
from tsforecast.dataset.panel import build_panel, load_panel, save_panel
from tsforecast.dataset.sampling import WindowSampler
from tsforecast.dataset.split import PanelTooShortError, needed_rows, split_bounds, too_short_error
from tsforecast.errors import DataError

L, H = 12, 4


def coded_frame(lengths: list[int], seed: int = 0, shuffle: bool = True) -> pd.DataFrame:
    """Series ``s<i>`` of ``lengths[i]`` rows whose value is ``1000 * i + local row``; rows shuffled
    unless ``shuffle`` is False (then series ``i`` is panel series ``i``)."""
    parts = []
    for i, n in enumerate(lengths):
        ts = pd.date_range("2021-01-01", periods=n, freq="h") + pd.Timedelta(hours=7 * i)
        parts.append(
            pd.DataFrame(
                {"sid": f"s{i}", "ts": ts, "y": 1000.0 * i + np.arange(n), "x": np.sin(np.arange(n) + i)}
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    if not shuffle:
        return frame
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def build(frame: pd.DataFrame, split: SplitConfig | None = None, window: WindowConfig | None = None, **kw):
    return build_panel(
        frame,
        id_column="sid",
        timestamp_column="ts",
        columns=["y", "x"],
        split=split or SplitConfig(train=0.6, val=0.2, test=0.2, lookback=True),
        window=window or WindowConfig(input_size=L, horizon=H, stride=1),
        **kw,
    )


def test_series_keep_input_order_and_rows_are_sorted_in_time() -> None:
    panel = build(coded_frame([50, 40, 60]))
    assert sorted(panel.ids) == ["s0", "s1", "s2"]  # in order of first appearance in the frame
    first_seen = list(dict.fromkeys(coded_frame([50, 40, 60])["sid"]))
    assert list(panel.ids) == first_seen
    for i, sid in enumerate(panel.ids):
        k = int(sid[1:])
        np.testing.assert_array_equal(panel.series(i)[:, 0], 1000 * k + np.arange(panel.lengths[i]))
        assert panel.timestamps(i)[0] == pd.Timestamp("2021-01-01") + pd.Timedelta(hours=7 * k)
    assert panel.freq == "h"


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(70, 140), min_size=1, max_size=6),
    look_back=st.booleans(),
    stride=st.integers(1, 3),
    part=st.sampled_from(["train", "val", "test"]),
)
def test_windows_never_cross_series_and_read_consecutive_rows(
    lengths: list[int], look_back: bool, stride: int, part: str
) -> None:
    split = SplitConfig(train=0.5, val=0.25, test=0.25, lookback=look_back)
    panel = build(coded_frame(lengths), split, WindowConfig(input_size=L, horizon=H, stride=stride))
    idx = panel.window_index(part)
    assert idx.shape == (panel.windows(part).total, 2)
    X, Y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    rows = np.concatenate([X[:, :, 0], Y], axis=1)  # (K, L+H) coded values
    series_of_row = rows // 1000
    assert (series_of_row == series_of_row[:, :1]).all()  # one series per window
    assert (np.diff(rows, axis=1) == 1).all()  # consecutive rows of it
    sids = np.array([int(s[1:]) for s in panel.ids])
    np.testing.assert_array_equal(series_of_row[:, 0], sids[idx[:, 0]])


def reference_starts(bounds: list[int], part: str, look_back: bool, stride: int) -> list[int]:
    """The windows of ``part`` in its ``bounds`` [start, end), by the windowing contract: targets in
    the part, inputs too unless val/test look back; every ``stride``-th in train, every one else."""
    start, end = bounds
    first = max(start - L, 0) if part != "train" and look_back else start
    return list(range(first, end - L - H + 1, stride if part == "train" else 1))


@pytest.mark.parametrize("look_back", [True, False])
def test_window_starts_of_every_series_follow_the_windowing_contract(look_back: bool) -> None:
    split = SplitConfig(train=0.6, val=0.2, test=0.2, lookback=look_back)
    window = WindowConfig(input_size=L, horizon=H, stride=2)
    panel = build(coded_frame([90, 120, 85]), split, window)
    for part in ("train", "val", "test"):
        idx = panel.window_index(part)
        for i in range(panel.n_series):
            expected = reference_starts(panel.part_bounds(part)[i].tolist(), part, look_back, 2)
            assert idx[idx[:, 0] == i, 1].tolist() == expected


def test_fraction_bounds_round_each_series_own_length_down() -> None:
    split = SplitConfig(train=0.7, val=0.15, test=0.15, lookback=True)
    panel = build(coded_frame([100, 173, 256], shuffle=False), split)
    assert panel.bounds.tolist() == [
        [[0, 70], [70, 85], [85, 100]],
        [[0, 121], [121, 146], [146, 171]],  # 173 * (0.7, 0.15, 0.15) = 121.1, 25.95, 25.95
        [[0, 179], [179, 217], [217, 255]],  # 256 * ... = 179.2, 38.4, 38.4
    ]


def test_one_series_split_rounds_fractions_down_and_counts_look_back_by_default() -> None:
    fractions = SplitConfig(train=0.7, val=0.1, test=0.2)
    bounds, short = split_bounds(np.array([99]), fractions, WindowConfig(input_size=4, horizon=2), "start")
    assert bounds.tolist() == [[[0, 69], [69, 78], [78, 97]]] and not short.any()
    assert fractions.inputs_look_back is False  # fractions: lookback auto -> inputs stay in their split
    counts = SplitConfig(train=30, val=5, test=5)
    bounds, short = split_bounds(np.array([50]), counts, WindowConfig(input_size=8, horizon=5), "start")
    assert bounds.tolist() == [[[0, 30], [30, 35], [35, 40]]] and not short.any()
    assert counts.inputs_look_back is True


def test_count_bounds_end_at_each_series_end_by_default_and_start_at_row_0_with_anchor_start() -> None:
    split = SplitConfig(train=40, val=8, test=8)
    frame = coded_frame([60, 90], shuffle=False)
    end = build(frame, split)
    assert [end.part_bounds("test")[i].tolist() for i in range(2)] == [[52, 60], [82, 90]]
    assert [end.part_bounds("val")[i].tolist() for i in range(2)] == [[44, 52], [74, 82]]
    # train: every row before val, not only the last split.train of them
    assert [end.part_bounds("train")[i].tolist() for i in range(2)] == [[0, 44], [0, 74]]
    start = build(frame, split, anchor="start")
    assert start.bounds.tolist() == [[[0, 40], [40, 48], [48, 56]]] * 2


def test_count_split_train_is_at_least_split_train_rows_before_val() -> None:
    split = SplitConfig(train=40, val=8, test=8)
    window = WindowConfig(input_size=L, horizon=H)
    bounds, short = split_bounds(np.array([55, 56, 57, 200]), split, window)
    assert short.tolist() == [True, False, False, False]  # 55 - 16 = 39 rows before val < 40
    assert bounds[1].tolist() == [[0, 40], [40, 48], [48, 56]]
    assert bounds[3].tolist() == [[0, 184], [184, 192], [192, 200]]


def test_too_short_report_names_twenty_series_then_counts_the_rest() -> None:
    split = SplitConfig(train=40, val=8, test=8)
    lengths = np.array([30] * 25 + [100])
    ids = pd.Index([f"s{i}" for i in range(26)])
    _, short = split_bounds(lengths, split, WindowConfig(input_size=L, horizon=H))
    err = too_short_error(ids, lengths, short, needed_rows(split, WindowConfig(input_size=L, horizon=H)))
    msg = str(err)
    assert "25 of 26 series are too short" in msg and "each needs at least 56 rows" in msg
    assert "s19 (30 rows) and 5 more." in msg and "s20 " not in msg and "s25" not in msg
    assert len(err.short) == 25


def test_scalers_equal_pandas_groupby_over_each_series_train_rows() -> None:
    frame = synthetic_panel(7, length=200, seed=3).rename(columns={"unique_id": "sid", "timestamp": "ts"})
    frame["x"] = np.cos(np.arange(len(frame)) / 5.0) * (1 + frame["value"] / 100)
    split = SplitConfig(train=0.6, val=0.2, test=0.2, lookback=True)
    panel = build_panel(
        frame, id_column="sid", timestamp_column="ts", columns=["value", "x"], split=split,
        window=WindowConfig(input_size=L, horizon=H),
    )  # fmt: skip
    train = frame.groupby("sid", observed=True, sort=False).head(120)  # floor(0.6 * 200)
    stats = train.groupby("sid", observed=True, sort=False)[["value", "x"]].agg(
        ["mean", lambda s: s.std(ddof=0)]
    )
    stats = stats.loc[list(panel.ids)]
    np.testing.assert_allclose(panel.mean, stats.xs("mean", axis=1, level=1).to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(panel.std, stats.xs("<lambda_0>", axis=1, level=1).to_numpy(), rtol=1e-4)


def test_gather_scales_each_window_with_its_own_series_scaler() -> None:
    panel = build(coded_frame([80, 100]))
    idx = panel.window_index("test")
    raw_x, raw_y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    X, Y = panel.gather(idx[:, 0], idx[:, 1])
    s = idx[:, 0]
    assert X.shape == (len(idx), L, 2) and Y.shape == (len(idx), H) and X.dtype == np.float32
    np.testing.assert_allclose(
        X, (raw_x - panel.mean[s, None, :]) / panel.std[s, None, :], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(panel.inverse_target(s, Y), raw_y, rtol=1e-5, atol=1e-3)


def test_histories_are_views_cut_before_a_part() -> None:
    panel = build(coded_frame([80, 100], shuffle=False))
    full = panel.histories()
    assert [h.size for h in full] == [80, 100] and np.shares_memory(full[1], panel.values)
    before_test = panel.histories(1, 2, before="test")
    np.testing.assert_array_equal(before_test[0], 1000.0 + np.arange(80))  # test starts at row 60 + 20


def test_last_inputs_are_each_series_last_rows_scaled_with_its_scaler() -> None:
    panel = build(coded_frame([80, 100], shuffle=False))
    raw = panel.last_inputs(scaled=False)
    assert raw.shape == (2, L, 2)
    np.testing.assert_array_equal(raw[1, :, 0], 1000.0 + np.arange(100 - L, 100))
    scaled = panel.last_inputs()
    np.testing.assert_allclose(
        scaled, (raw - panel.mean[:, None, :]) / panel.std[:, None, :], rtol=1e-5, atol=1e-5
    )


def test_gather_refuses_a_window_outside_its_series() -> None:
    panel = build(coded_frame([80, 100], shuffle=False))
    with pytest.raises(IndexError, match="outside its series"):
        panel.gather(np.array([0]), np.array([80 - L - H + 1]))


def test_too_short_report_names_every_bad_series_with_its_length_and_the_need() -> None:
    split = SplitConfig(train=0.6, val=0.2, test=0.2, lookback=True)
    with pytest.raises(PanelTooShortError) as info:
        build(coded_frame([100, 20, 80, 25, 26]), split)
    msg = str(info.value)
    assert info.value.need == 27  # floor(0.6 n) >= L+H = 16 first holds at n = 27
    assert "3 of 5 series are too short for the split and the window: each needs at least 27 rows" in msg
    for sid, n in (("s1", 20), ("s3", 25), ("s4", 26)):
        assert f"{sid} ({n} rows)" in msg
    assert "s0 " not in msg and "s2 " not in msg
    assert info.value.short == {"s1": 20, "s3": 25, "s4": 26}


def test_count_split_too_small_for_the_window_is_one_config_error() -> None:
    with pytest.raises(DataError, match=r"split row counts train=10 are too small for the window"):
        build(coded_frame([100]), SplitConfig(train=10, val=8, test=8))


def test_duplicate_timestamps_name_every_series_that_has_them() -> None:
    frame = coded_frame([50, 50, 50], seed=1)
    dup = frame[frame["sid"].isin(["s0", "s2"])].groupby("sid").head(1)
    with pytest.raises(DataError, match=r"series s0, s2: a timestamp appears twice"):
        build(pd.concat([frame, dup], ignore_index=True))


def test_constant_train_rows_name_the_series_and_column() -> None:
    frame = coded_frame([60, 60])
    frame.loc[frame["sid"] == "s1", "x"] = 3.0
    with pytest.raises(
        DataError, match=r"column\(s\) \['x'\] are constant over the train rows \(std=0\) of series s1 \(x\)"
    ):
        build(frame)


def test_save_and_load_round_trip_with_a_memory_mapped_buffer(tmp_path) -> None:
    panel = build(coded_frame([70, 90, 110]))
    save_panel(panel, tmp_path / "panel")
    back = load_panel(tmp_path / "panel")
    assert isinstance(back.values, np.memmap)
    assert list(back.ids) == list(panel.ids) and back.ids.name == "sid"
    for name in ("offsets", "bounds", "mean", "std", "first"):
        np.testing.assert_array_equal(getattr(back, name), getattr(panel, name))
    idx = panel.window_index("val")
    for a, b in zip(panel.gather(idx[:, 0], idx[:, 1]), back.gather(idx[:, 0], idx[:, 1]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob(".panel.*"))  # no temp dirs left


def test_a_failed_save_keeps_the_previous_panel(tmp_path, monkeypatch) -> None:
    panel = build(coded_frame([70, 90]))
    save_panel(panel, tmp_path / "panel")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("tsforecast.dataset.panel.write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        save_panel(build(coded_frame([70, 90, 110])), tmp_path / "panel")
    assert load_panel(tmp_path / "panel").n_series == 2


# --- sampler -----------------------------------------------------------------------------


def sampler_panel(lengths: list[int]):
    return build(
        coded_frame(lengths, shuffle=False), SplitConfig(train=0.8, val=0.1, test=0.1, lookback=True)
    )


def test_sampler_is_reproducible_per_seed_and_epoch_and_epochs_differ() -> None:
    ranges = sampler_panel([100, 300]).windows("train")
    a = WindowSampler(ranges, 500, seed=7)
    b = WindowSampler(ranges, 500, seed=7)
    for x, y in zip(a.epoch(3), b.epoch(3), strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.epoch(3)[1], a.epoch(4)[1])
    assert not np.array_equal(a.epoch(3)[1], WindowSampler(ranges, 500, seed=8).epoch(3)[1])


def test_sampler_resumes_mid_epoch_with_the_same_batches() -> None:
    s = WindowSampler(sampler_panel([100, 300]).windows("train"), 1000, seed=1)
    full = list(s.batches(epoch=2, batch_size=64))
    resumed = list(s.batches(epoch=2, batch_size=64, start_batch=5))
    assert len(full) == s.n_batches(64) == 16 and len(resumed) == 11
    for (s1, st1), (s2, st2) in zip(full[5:], resumed, strict=True):
        np.testing.assert_array_equal(s1, s2)
        np.testing.assert_array_equal(st1, st2)


@pytest.mark.parametrize("weighting", ["series", "windows"])
def test_sampled_windows_are_valid_training_windows(weighting: str) -> None:
    panel = sampler_panel([60, 100, 300])
    ranges = panel.windows("train")
    s, starts = WindowSampler(ranges, 4000, seed=0, weighting=weighting).epoch(0)
    assert s.shape == starts.shape == (4000,)
    assert ((starts - ranges.first[s]) % ranges.step == 0).all()
    k = (starts - ranges.first[s]) // ranges.step
    assert (k >= 0).all() and (k < ranges.count[s]).all()
    panel.gather(s, starts)  # every window inside its series (else IndexError)


def test_series_weighting_gives_each_series_the_same_share() -> None:
    ranges = sampler_panel([40, 100, 400, 1600]).windows("train")
    s, starts = WindowSampler(ranges, 200_000, seed=0, weighting="series").epoch(0)
    freq = np.bincount(s, minlength=4) / s.size
    np.testing.assert_allclose(freq, 0.25, atol=0.01)
    k = (starts[s == 3] - ranges.first[3]) // ranges.step  # uniform inside a series too
    assert abs(k.mean() - (ranges.count[3] - 1) / 2) < 0.02 * ranges.count[3]


def test_window_weighting_gives_each_series_its_share_of_windows() -> None:
    ranges = sampler_panel([40, 100, 400, 1600]).windows("train")
    sampler = WindowSampler(ranges, 200_000, seed=0, weighting="windows")
    s, _ = sampler.epoch(0)
    expected = ranges.count / ranges.count.sum()
    np.testing.assert_allclose(np.bincount(s, minlength=4) / s.size, expected, atol=0.01)
    np.testing.assert_allclose(sampler.probabilities(), expected)
    assert expected[0] < 0.02 and expected[3] > 0.7  # far from 0.25 each: the schemes really differ


def test_sampler_rejects_a_bad_weighting_and_epoch_size() -> None:
    ranges = sampler_panel([100]).windows("train")
    with pytest.raises(ValueError, match=r"weighting='uniform' must be one of \('series', 'windows'\)"):
        WindowSampler(ranges, 10, weighting="uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"windows_per_epoch=0 must be a positive integer"):
        WindowSampler(ranges, 0)


def test_epoch_cost_does_not_grow_with_the_panel() -> None:
    small = WindowSampler(sampler_panel([100] * 2).windows("train"), 256, seed=0)
    large = WindowSampler(sampler_panel([100] * 50).windows("train"), 256, seed=0)
    assert small.epoch(0)[0].size == large.epoch(0)[0].size == 256
    assert len(np.unique(large.epoch(0)[0])) > 30  # and it does reach across the panel


def test_unchanged_input_gives_an_identical_panel_whatever_the_row_order() -> None:
    a = build(coded_frame([70, 90], seed=0))
    b = build(coded_frame([70, 90], seed=5).sort_values(["sid", "ts"]).reset_index(drop=True))
    order = [list(b.ids).index(i) for i in a.ids]
    for i, j in enumerate(order):
        np.testing.assert_array_equal(a.series(i), b.series(j))
    np.testing.assert_array_equal(a.bounds, b.bounds[order])


def test_val_windows_of_one_series_look_back_into_the_train_rows() -> None:
    panel = build(coded_frame([100]))  # 0.6 / 0.2 / 0.2, lookback: val [60, 80)
    assert panel.bounds.tolist() == [[[0, 60], [60, 80], [80, 100]]]
    assert panel.window_index("val")[:, 1].tolist() == list(range(60 - L, 80 - L - H + 1))  # 48 .. 64


def test_the_embedded_m4_hourly_panel_keeps_its_last_48_hours_as_test() -> None:
    from tsforecast.data.datasets import load_m4_hourly, m4_hourly_arrays

    split = SplitConfig(train=600, val=48, test=48)  # counts: anchored at each series' end
    panel = build_panel(
        load_m4_hourly(), id_column="unique_id", timestamp_column="timestamp", columns=["value"],
        split=split, window=WindowConfig(input_size=168, horizon=48),
    )  # fmt: skip
    ids, series = m4_hourly_arrays()
    assert list(panel.ids) == list(ids) and panel.n_series == 414
    np.testing.assert_array_equal(panel.part_bounds("test")[:, 1], [x.size for x in series])
    test_idx = panel.window_index("test")
    assert len(test_idx) == 414  # exactly one 48-hour test window per series
    _, Y = panel.gather(test_idx[:, 0], test_idx[:, 1], scaled=False)
    np.testing.assert_allclose(Y, np.stack([x[-48:] for x in series]), rtol=1e-6)
