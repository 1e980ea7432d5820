"""monitoring/realized.py: archived forecasts scored against the rows that arrived, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.monitoring_fixtures import PERIOD, H, cfg_for, delivery, series_frame
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.monitoring import realized
from tsforecast.monitoring.archive import read_archive, write


def _actuals(frame: pd.DataFrame, cfg) -> pd.DataFrame:
    long = with_series_id(frame, cfg.data)
    idc = id_column(cfg.data)
    out = long[[idc, "timestamp", "y"]].rename(columns={"y": realized.ACTUAL})
    out[idc] = out[idc].astype(str)
    return out.sort_values([idc, "timestamp"]).reset_index(drop=True)


def _score(tmp_path: Path, frame: pd.DataFrame, cfg, deliveries: list[pd.DataFrame], newest=None):
    for d in deliveries:
        write(d, tmp_path)
    arch, _ = read_archive(tmp_path, cfg.data)
    return realized.score(
        arch, _actuals(newest if newest is not None else frame, cfg), id_column(cfg.data), PERIOD
    )


@pytest.mark.parametrize("n_series", [1, 3])
def test_realized_mae_is_recomputed_from_the_archive_file_and_the_data_to_1e_9(
    tmp_path: Path, n_series: int
) -> None:
    cfg = cfg_for(n_series)
    frame = series_frame(n_series)
    rng = np.random.default_rng(1)
    d = delivery(frame, cfg, origin_row=400)
    d["forecast"] += rng.normal(0, 3, len(d))  # errors of every size and sign
    _, origins = _score(tmp_path, frame, cfg, [d])

    file = next(tmp_path.glob("*.parquet"))
    arch = with_series_id(pd.read_parquet(file), cfg.data)
    data = with_series_id(frame, cfg.data)
    idc = id_column(cfg.data)
    joined = arch.merge(data[[idc, "timestamp", "y"]], on=[idc, "timestamp"])
    assert len(origins) == 1
    assert origins["mae"].iloc[0] == pytest.approx(
        np.mean(np.abs(joined["y"] - joined["forecast"])), abs=1e-9
    )
    assert origins["steps_observed"].iloc[0] == H * n_series


def test_mse_scaled_is_on_the_models_train_scale(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    d = delivery(frame, cfg, origin_row=400, error=2.0)
    std = float(d["train_std"].iloc[0])

    _, origins = _score(tmp_path, frame, cfg, [d])

    assert origins["mae"].iloc[0] == pytest.approx(2.0)
    assert origins["mse_scaled"].iloc[0] == pytest.approx((2.0 / std) ** 2)


def test_a_partly_arrived_horizon_is_scored_on_the_steps_observed(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame(n=480)
    d = delivery(frame, cfg, origin_row=475, error=-1.5)  # rows 476..479 arrived, 2 steps not yet

    _, origins = _score(tmp_path, frame, cfg, [d])

    row = origins.iloc[0]
    assert (row["steps_observed"], row["horizon"], bool(row["complete"])) == (4, H, False)
    assert row["mae"] == pytest.approx(1.5)


def test_a_forecast_of_rows_not_arrived_yet_is_not_scored(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame(n=480)

    _, origins = _score(tmp_path, frame, cfg, [delivery(frame, cfg, origin_row=479)])

    assert origins.empty


def test_coverage_counts_the_actuals_inside_the_interval(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    inside = delivery(frame, cfg, origin_row=300, error=1.0, width=2.0)
    outside = delivery(frame, cfg, origin_row=306, error=3.0, width=2.0)

    _, origins = _score(tmp_path, frame, cfg, [inside, outside])

    assert origins["coverage_80"].tolist() == [1.0, 0.0]


def test_the_latest_delivery_of_an_origin_by_a_model_is_the_one_scored(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    old = delivery(frame, cfg, origin_row=300, error=1.0, delivered_at="2024-02-01")
    new = delivery(frame, cfg, origin_row=300, error=4.0, delivered_at="2024-02-02")
    other_model = delivery(frame, cfg, origin_row=300, error=2.0, version="2")

    _, origins = _score(tmp_path, frame, cfg, [old, new, other_model])

    assert sorted(zip(origins["model_version"], origins["mae"].round(6), strict=True)) == [
        ("1", 4.0),
        ("2", 2.0),
    ]


def test_mase_is_scaled_by_the_in_sample_seasonal_naive_error_up_to_the_origin(tmp_path: Path) -> None:
    cfg = cfg_for(1)
    frame = series_frame()
    _, origins = _score(tmp_path, frame, cfg, [delivery(frame, cfg, origin_row=400, error=1.0)])

    y = frame["y"].to_numpy()[: 400 + 1]
    scale = np.mean(np.abs(y[PERIOD:] - y[:-PERIOD]))
    assert origins["mase"].iloc[0] == pytest.approx(1.0 / scale)


def test_pooling_over_series_counts_every_point_once(tmp_path: Path) -> None:
    cfg = cfg_for(3)
    frame = series_frame(3)
    d = delivery(frame, cfg, origin_row=400, error=0.0)
    d.loc[d["sid"] == "s0", "forecast"] += 3.0  # one series off by 3, two exact

    table, origins = _score(tmp_path, frame, cfg, [d])

    assert origins["mae"].iloc[0] == pytest.approx(1.0)
    assert sorted(table["mae"].round(9)) == [0.0, 0.0, 3.0]
    assert origins["n_series"].iloc[0] == 3


def test_rolling_pooled_weights_each_observed_point_once() -> None:
    rows = pd.DataFrame({"sse_scaled": [6.0, 0.0, 3.0], "n": [6, 6, 3]})

    pooled = realized.rolling_pooled(rows, recent=2)

    assert pooled.tolist() == pytest.approx([1.0, 0.5, 1 / 3])
