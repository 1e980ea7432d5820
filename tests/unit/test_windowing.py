"""windowing.py: the train-fit scaler, exact window contents, and the window stage's files.

The general laws of the split and the windows (no leakage, counts, view shapes) are
Hypothesis properties in tests/reliability/test_properties.py; these are small worked
examples with every value written out, plus the run_window -> load_prepared round trip.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from tsforecast.config import Config, SplitConfig, WindowConfig, config_from_dict
from tsforecast.dataset.window import (
    Prepared,
    SplitBounds,
    StandardScaler,
    WindowResult,
    load_prepared,
    run_window,
    sliding_windows,
    split_rows,
    window_starts,
)
from tsforecast.errors import DataError
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths
from tsforecast.training.inference import WindowBatches

# ---------------------------------------------------------------- StandardScaler


def test_scaler_fit_uses_the_population_mean_and_std_per_column():
    values = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    scaler = StandardScaler.fit(values, ["y", "temp"])
    assert scaler.mean == pytest.approx((3.0, 20.0))
    assert scaler.std == pytest.approx((np.sqrt(8 / 3), np.sqrt(200 / 3)))  # ddof=0
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled.mean(axis=0), [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), [1.0, 1.0])
    np.testing.assert_allclose(scaled[:, 0], (values[:, 0] - 3.0) / np.sqrt(8 / 3))


def test_scaler_inverse_target_undoes_the_target_column_for_any_shape():
    rng = np.random.default_rng(0)
    values = rng.normal(50.0, 7.0, size=(40, 3))
    scaler = StandardScaler.fit(values)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaler.inverse_target(scaled[:, 0]), values[:, 0])
    windows = scaled[:30, 0].reshape(5, 6)  # (N, H), as evaluate passes them
    np.testing.assert_allclose(scaler.inverse_target(windows), values[:30, 0].reshape(5, 6))
    assert scaler.inverse_target(0.0) == pytest.approx(scaler.mean[0])


def test_scaler_round_trips_through_its_dict():
    scaler = StandardScaler.fit(np.array([[1.0, 2.0], [4.0, 8.0], [0.5, -3.0]]))
    again = StandardScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert again == scaler


def test_scaler_fit_on_train_rows_ignores_later_rows():
    values = np.concatenate([np.arange(10.0), 1000.0 + np.arange(5.0)])[:, None]
    scaler = StandardScaler.fit(values[:10])
    assert scaler.mean == (4.5,)
    assert scaler.std == pytest.approx((np.arange(10.0).std(),))
    assert scaler.transform(values)[-1, 0] > 100  # later rows are scaled, not refitted


def test_a_constant_column_is_an_error_naming_it():
    values = np.column_stack([np.arange(6.0), np.full(6, 21.5), np.ones(6)])
    with pytest.raises(DataError, match=r"column\(s\) \['temp', 'flag'\] are constant over the train rows"):
        StandardScaler.fit(values, ["y", "temp", "flag"])
    with pytest.raises(DataError, match=r"column\(s\) \[1, 2\] are constant .*std=0"):
        StandardScaler.fit(values)


# ---------------------------------------------------------------- exact windows


def test_sliding_windows_hold_the_exact_rows_of_a_small_series():
    series = np.column_stack([np.arange(10.0), 100 + np.arange(10.0)]).astype(np.float32)  # (10, 2)
    X, Y = sliding_windows(series, 4, 3)
    assert X.shape == (4, 4, 2) and Y.shape == (4, 3)
    assert X[0, :, 0].tolist() == [0, 1, 2, 3]
    assert X[0, :, 1].tolist() == [100, 101, 102, 103]  # covariates ride along in the input
    assert Y[0].tolist() == [4, 5, 6]  # the target is column 0 only
    assert X[3, :, 0].tolist() == [3, 4, 5, 6]
    assert Y[3].tolist() == [7, 8, 9]
    for s in range(4):
        np.testing.assert_array_equal(X[s], series[s : s + 4])
        np.testing.assert_array_equal(Y[s], series[s + 4 : s + 7, 0])


def test_window_starts_of_a_small_split_written_out():
    bounds = SplitBounds(train=(0, 20), val=(20, 26), test=(26, 32), look_back=True)
    L, H = 4, 2
    assert window_starts(bounds, "train", L, H, 3).tolist() == [0, 3, 6, 9, 12]
    assert window_starts(bounds, "val", L, H, 3).tolist() == [16, 17, 18, 19, 20]  # stride 1 outside train
    assert window_starts(bounds, "test", L, H).tolist() == [22, 23, 24, 25, 26]
    inside = SplitBounds(train=(0, 20), val=(20, 26), test=(26, 32), look_back=False)
    assert window_starts(inside, "val", L, H).tolist() == [20]
    assert window_starts(inside, "test", L, H).tolist() == [26]
    assert window_starts(inside, "train", 15, 6).size == 0  # too short: no windows, no error


def test_window_batches_gather_the_same_values_as_the_views():
    series = np.column_stack([np.arange(30.0), -np.arange(30.0)]).astype(np.float32)
    L, H = 5, 3
    starts = np.array([0, 7, 22], dtype=np.int64)
    batches = WindowBatches(torch.from_numpy(series), torch.from_numpy(starts), L, H)
    assert len(batches) == 3
    x, y = batches.batch(torch.tensor([2, 0]))
    assert x.shape == (2, L, 2) and y.shape == (2, H)
    assert x[0, :, 0].tolist() == [22, 23, 24, 25, 26]
    assert x[0, :, 1].tolist() == [-22, -23, -24, -25, -26]
    assert y[0].tolist() == [27, 28, 29]
    assert x[1, :, 0].tolist() == [0, 1, 2, 3, 4] and y[1].tolist() == [5, 6, 7]
    X, Y = sliding_windows(series, L, H)
    np.testing.assert_array_equal(x.numpy(), X[starts[[2, 0]]])
    np.testing.assert_array_equal(y.numpy(), Y[starts[[2, 0]]])


def test_split_rows_rounds_fractions_down_and_keeps_order():
    split = SplitConfig(train=0.7, val=0.1, test=0.2)
    bounds = split_rows(99, split, WindowConfig(input_size=4, horizon=2))
    assert (bounds.train, bounds.val, bounds.test) == ((0, 69), (69, 78), (78, 97))
    assert bounds.look_back is False  # fractions: lookback auto -> inputs stay in their split


def test_split_rows_with_counts_looks_back_by_default():
    split = SplitConfig(train=30, val=5, test=5)
    bounds = split_rows(50, split, WindowConfig(input_size=8, horizon=5))
    assert (bounds.train, bounds.val, bounds.test) == ((0, 30), (30, 35), (35, 40))
    assert bounds.look_back is True


# ---------------------------------------------------------------- run_window / load_prepared

N_ROWS = 120


def _cfg(**window: int) -> Config:
    return config_from_dict(
        {
            "data": {"target": "y", "covariates": ["temp"]},
            "split": {"train": 0.6, "val": 0.2, "test": 0.2},
            "window": {"input_size": 12, "horizon": 4, "stride": 2, **window},
            "evaluate": {"seasonal_period": 6},
        }
    )


def _frame(n: int = N_ROWS) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="h"),
            # a trend makes the train rows' mean differ clearly from the whole series'
            "y": 10.0 + 0.5 * t + np.sin(2 * np.pi * t / 6),
            "temp": 20.0 + np.cos(2 * np.pi * t / 24),
            "unused": 1.0,
        }
    )


def _run_window(cfg: Config, paths: Paths) -> WindowResult:
    return run_window(cfg.data, cfg.split, cfg.window, paths)


def _validated_repo(tmp_path, frame: pd.DataFrame) -> Paths:
    """A checkout under tmp_path with data/validated as the validate stage writes it."""
    paths = Paths.from_root(tmp_path)
    paths.validated.mkdir(parents=True)
    frame.to_parquet(paths.validated / VALIDATED_FILE, index=False)
    write_json(paths.validated / VALIDATED_META, {"freq": "h", "n_rows": len(frame)})
    return paths


def test_run_window_then_load_prepared_round_trips(tmp_path):
    frame, cfg = _frame(), _cfg()
    paths = _validated_repo(tmp_path, frame)
    result = _run_window(cfg, paths)
    prepared = load_prepared(paths.prepared)

    assert isinstance(prepared, Prepared)
    assert prepared.columns == ["y", "temp"]  # target first, then covariates; others dropped
    assert (prepared.input_size, prepared.horizon, prepared.stride) == (12, 4, 2)
    assert prepared.freq == "h"
    assert prepared.bounds == SplitBounds(train=(0, 72), val=(72, 96), test=(96, 120), look_back=False)
    assert prepared.series.dtype == np.float32 and prepared.series.shape == (N_ROWS, 2)
    pd.testing.assert_index_equal(
        prepared.timestamps, pd.DatetimeIndex(frame["timestamp"]), check_names=False
    )

    values = frame[["y", "temp"]].to_numpy()
    np.testing.assert_allclose(prepared.series, prepared.scaler.transform(values), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(prepared.scaler.inverse_target(prepared.series[:, 0]), values[:, 0], rtol=1e-6)

    assert (result.n_rows, result.n_train, result.n_val, result.n_test) == (120, 72, 24, 24)
    assert result.n_train_windows == len(range(0, 72 - 16 + 1, 2)) == 29
    assert result.n_val_windows == 24 - 16 + 1
    assert result.n_test_windows == 24 - 16 + 1
    for part, n in (("train", 29), ("val", 9), ("test", 9)):
        starts, X, Y = prepared.windows(part)
        assert len(starts) == n
        s = int(starts[-1])
        np.testing.assert_array_equal(X[s], prepared.series[s : s + 12])
        np.testing.assert_array_equal(Y[s], prepared.series[s + 12 : s + 16, 0])

    meta = json.loads((paths.prepared / "meta.json").read_text())
    assert meta["n_windows"] == {"train": 29, "val": 9, "test": 9}
    assert meta["bounds"] == {"train": [0, 72], "val": [72, 96], "test": [96, 120]}
    assert not list(paths.root.glob("data/.prepared.*")), "a temp dir of the atomic write was left"


def test_run_window_fits_the_scaler_on_the_train_rows_only(tmp_path):
    frame, cfg = _frame(), _cfg()
    paths = _validated_repo(tmp_path, frame)
    _run_window(cfg, paths)
    scaler = load_prepared(paths.prepared).scaler
    train = frame[["y", "temp"]].to_numpy()[:72]
    assert scaler.mean == pytest.approx(tuple(train.mean(axis=0)))
    assert scaler.std == pytest.approx(tuple(train.std(axis=0)))
    whole = frame["y"].to_numpy()
    assert scaler.mean[0] != pytest.approx(whole.mean())  # the trend would leak the future


def test_load_prepared_can_memory_map_the_series(tmp_path):
    paths = _validated_repo(tmp_path, _frame())
    _run_window(_cfg(), paths)
    mapped = load_prepared(paths.prepared, mmap=True)
    assert isinstance(mapped.series, np.memmap)
    assert not mapped.series.flags.writeable
    np.testing.assert_array_equal(np.asarray(mapped.series), load_prepared(paths.prepared).series)


def test_run_window_replaces_an_older_prepared_dir_whole(tmp_path):
    paths = _validated_repo(tmp_path, _frame())
    _run_window(_cfg(), paths)
    (paths.prepared / "stale.txt").write_text("from an older run")
    _run_window(_cfg(horizon=6), paths)
    assert not (paths.prepared / "stale.txt").exists()
    assert load_prepared(paths.prepared).horizon == 6


def test_run_window_with_a_constant_train_target_is_an_error(tmp_path):
    frame = _frame()
    frame.loc[:71, "y"] = 5.0  # constant over the 72 train rows, varying afterwards
    paths = _validated_repo(tmp_path, frame)
    with pytest.raises(DataError, match=r"column\(s\) \['y'\] are constant over the train rows"):
        _run_window(_cfg(), paths)
    assert not paths.prepared.exists()


def test_run_window_missing_column_names_it_and_the_columns_present(tmp_path):
    paths = _validated_repo(tmp_path, _frame().drop(columns=["temp"]))
    with pytest.raises(
        DataError, match=r"column\(s\) \['temp'\] not found; columns are \['timestamp', 'y', 'unused'\]"
    ):
        _run_window(_cfg(), paths)


def test_run_window_without_validated_data_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match=r"not found; run `tsforecast validate`"):
        _run_window(_cfg(), Paths.from_root(tmp_path))


def test_load_prepared_without_the_window_stage_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match=r"series\.npy not found; run `tsforecast window`"):
        load_prepared(Paths.from_root(tmp_path).prepared)


def test_run_window_too_few_rows_is_an_error_naming_the_sizes(tmp_path):
    paths = _validated_repo(tmp_path, _frame(40))
    with pytest.raises(DataError, match=r"not enough rows for the split and the window: .*val has 8 rows"):
        _run_window(_cfg(), paths)
