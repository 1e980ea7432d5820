"""monitoring/drift.py: level, scale and seasonal profile of the newest rows against the train rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.monitoring_fixtures import ID, PERIOD, cfg_for, series_frame, write_prepared
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.dataset.panel import load_panel
from tsforecast.monitoring import drift
from tsforecast.paths import Paths

LIMITS = drift.Thresholds(level=0.5, scale=0.4, profile=0.35)


def _table(tmp_path: Path, n_series: int, change=None, window: int = PERIOD) -> pd.DataFrame:
    """Train on the first 300 rows; the newest rows are the last ``window`` of 480, changed by ``change``."""
    cfg = cfg_for(n_series)
    frame = series_frame(n_series, n=480)
    paths = Paths.from_root(tmp_path)
    head = frame.groupby(ID, sort=False).head(300) if n_series > 1 else frame.head(300)
    write_prepared(paths, cfg, head)
    ref = drift.reference_from_panel(load_panel(paths.prepared))
    newest = with_series_id(frame, cfg.data)
    newest[id_column(cfg.data)] = newest[id_column(cfg.data)].astype(str)
    if change is not None:
        newest = change(newest)
    return drift.drift_table(newest, id_column(cfg.data), "y", ref, window, PERIOD, LIMITS)


@pytest.mark.parametrize("n_series", [1, 3])
def test_the_continuation_of_the_training_series_shows_no_drift(tmp_path: Path, n_series: int) -> None:
    table = _table(tmp_path, n_series)

    assert len(table) == n_series and (table["n_newest"] == PERIOD).all()
    assert table["level"].abs().max() < 0.1
    assert table["scale"].abs().max() < 0.1
    assert table["profile"].max() < 0.1
    assert (table["drifted"] == "").all()


def test_a_level_shift_moves_the_level_statistic_not_the_profile(tmp_path: Path) -> None:
    std = series_frame(n=300)["y"].std(ddof=0)
    table = _table(tmp_path, 1, lambda f: f.assign(y=f["y"] + std))  # one train std up

    row = table.iloc[0]
    assert row["level"] == pytest.approx(1.0, abs=0.1)
    assert row["profile"] < 0.1 and abs(row["scale"]) < 0.1
    assert row["drifted"] == "level"


def test_a_doubled_amplitude_moves_scale_and_profile(tmp_path: Path) -> None:
    table = _table(tmp_path, 1, lambda f: f.assign(y=50 + 2 * (f["y"] - 50)))

    row = table.iloc[0]
    assert row["scale"] == pytest.approx(np.log(2), abs=0.1)
    assert abs(row["level"]) < 0.1
    assert set(row["drifted"].split(",")) == {"scale", "profile"}


def test_a_cycle_out_of_phase_moves_the_profile_only(tmp_path: Path) -> None:
    def half_a_day_late(f: pd.DataFrame) -> pd.DataFrame:
        t = np.arange(len(f))
        return f.assign(y=50 + 10 * np.sin(2 * np.pi * t / PERIOD + np.pi))

    row = _table(tmp_path, 1, half_a_day_late).iloc[0]

    assert row["profile"] > 1.0
    assert abs(row["level"]) < 0.1 and abs(row["scale"]) < 0.1
    assert row["drifted"] == "profile"


def test_only_the_series_that_changed_is_named_and_the_share_decides(tmp_path: Path) -> None:
    table = _table(tmp_path, 3, lambda f: f.assign(y=np.where(f[ID] == "s1", f["y"] + 30, f["y"])))

    assert table.set_index(ID)["drifted"].to_dict() == {"s0": "", "s1": "level", "s2": ""}
    strict = drift.summarize(table, ID, LIMITS, share=0.0)
    tolerant = drift.summarize(table, ID, LIMITS, share=0.5)
    assert strict["drifted"] and strict["n_drifted"] == 1 and strict["series"][0][ID] == "s1"
    assert not tolerant["drifted"] and tolerant["share_drifted"] == pytest.approx(1 / 3)
    assert strict["largest"]["level"] > 1


def test_the_reference_is_the_train_rows_of_the_panel(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame(n=300)
    paths = Paths.from_root(tmp_path)
    write_prepared(paths, cfg, frame)

    ref = drift.reference_from_panel(load_panel(paths.prepared))

    n_train = int(300 * 0.7)
    assert len(ref.values) == n_train
    assert ref.values == pytest.approx(frame["y"].to_numpy()[:n_train], rel=1e-6)
    assert ref.mean[0] == pytest.approx(frame["y"][:n_train].mean(), rel=1e-6)


def test_steps_since_counts_grid_steps_and_marks_off_grid_stamps() -> None:
    first = np.array(["2024-01-01T00:00"] * 3, dtype="datetime64[ns]")
    ts = np.array(["2024-01-01T00:00", "2024-01-02T01:00", "2024-01-01T00:30"], dtype="datetime64[ns]")

    assert drift.steps_since(ts, first, "h").tolist() == [0, 25, -1]
