"""The window stage on a panel: validated long frame -> data/prepared/ as a panel, per-series splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers.repos import validate
from tests.helpers.series_frames import N, panel_frame
from tsforecast.config import SplitConfig
from tsforecast.dataset.panel import PARTS, is_panel_dir, load_panel
from tsforecast.dataset.window import run_window
from tsforecast.errors import DataError
from tsforecast.paths import VALIDATED_FILE

COUNTS = SplitConfig(train=20, val=6, test=6)  # row counts: anchored at each series' end


def prepared(make_repo, frame: pd.DataFrame, split: SplitConfig = COUNTS):
    repo = make_repo(frame, id_column="sid")
    validate(repo)
    c = repo.cfg
    result = run_window(c.data, split, c.window, repo.paths)
    return repo, result, load_panel(repo.paths.prepared)


def test_window_saves_a_panel_that_loads_back_with_every_series_as_validated(make_repo):
    frame = panel_frame(3)
    frame = frame[~((frame["sid"] == "s1") & (frame["timestamp"] > pd.Timestamp("2000-01-02 11:00")))]
    repo, result, panel = prepared(make_repo, frame)

    validated = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    assert is_panel_dir(repo.paths.prepared)
    assert list(panel.ids) == list(dict.fromkeys(frame["sid"])) and panel.ids.name == "sid"
    for i, sid in enumerate(panel.ids):
        own = validated[validated["sid"] == sid]
        np.testing.assert_allclose(panel.series(i)[:, 0], own["y"], rtol=1e-6)
        assert panel.timestamps(i)[0] == own["timestamp"].iloc[0]
    assert panel.freq == "h" and panel.columns == ("y",)
    lengths = {sid: int(n) for sid, n in zip(panel.ids, panel.lengths, strict=True)}
    assert lengths == {"s0": N, "s1": 35, "s2": N}
    assert (result.n_series, result.n_rows) == (3, 2 * N + 35)
    assert (result.n_val, result.n_test) == (18, 18)
    assert result.n_train == 2 * (N - 12) + (35 - 12)


def test_count_split_keeps_each_series_last_rows_for_test_and_trains_on_every_row_before_val(make_repo):
    frame = panel_frame(2, shuffle=False)
    frame = frame[~((frame["sid"] == "s1") & (frame["timestamp"] > pd.Timestamp("2000-01-02 11:00")))]
    _, _, panel = prepared(make_repo, frame)

    assert panel.bounds.tolist() == [
        [[0, 28], [28, 34], [34, 40]],
        [[0, 23], [23, 29], [29, 35]],
    ]


def test_each_series_is_scaled_with_the_mean_and_std_of_its_own_train_rows(make_repo):
    repo, _, panel = prepared(make_repo, panel_frame(4))

    validated = pd.read_parquet(repo.paths.validated / VALIDATED_FILE)
    for i, sid in enumerate(panel.ids):
        train = validated[validated["sid"] == sid]["y"].to_numpy()[: N - 12]
        assert panel.mean[i, 0] == pytest.approx(train.mean(), rel=1e-6)
        assert panel.std[i, 0] == pytest.approx(train.std(), rel=1e-5)


@pytest.mark.parametrize("part", PARTS)
def test_windows_never_cross_series(make_repo, part: str):
    _, _, panel = prepared(make_repo, panel_frame(5), SplitConfig(train=0.5, val=0.25, test=0.25))

    idx = panel.window_index(part)
    X, Y = panel.gather(idx[:, 0], idx[:, 1], scaled=False)

    rows = np.concatenate([X[:, :, 0], Y], axis=1)  # (K, L+H): y = 1000 i + row + sin(row)
    series = np.floor(rows / 1000)
    assert len(idx) > 0 and (series == series[:, :1]).all()
    codes = np.array([int(s[1:]) for s in panel.ids])
    np.testing.assert_array_equal(series[:, 0], codes[idx[:, 0]])


def test_window_refuses_a_validated_panel_of_another_id_column(make_repo):
    repo = make_repo(panel_frame(2), id_column="sid")
    validate(repo)
    c = repo.cfg
    data = c.data.model_copy(update={"id_column": "store"})

    with pytest.raises(DataError, match=r"validated with id_column='sid', params say data.id_column='store'"):
        run_window(data, c.split, c.window, repo.paths)
