"""Plots' value axes carry the data's unit: MW for the default data, the target's name otherwise."""

from __future__ import annotations

import matplotlib.axes
import numpy as np
import pandas as pd
import pytest

from tests.unit.test_evaluate import N_ROWS, PERIOD, H, L, _model, _series
from tsforecast.config import BUILTIN_TAYLOR, config_from_dict
from tsforecast.dataset.window import run_window
from tsforecast.evaluation.evaluate import run_evaluate
from tsforecast.evaluation.units import value_label
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths
from tsforecast.training.model import save_model


def test_the_default_data_is_in_megawatts() -> None:
    assert value_label(BUILTIN_TAYLOR, "demand") == "demand (MW)"


def test_a_users_file_is_labelled_with_its_target() -> None:
    assert value_label("data/external/load.csv", "load") == "load"
    assert value_label("data/external/load.csv", "demand") == "demand"


@pytest.mark.parametrize(
    ("path", "target", "label"), [(BUILTIN_TAYLOR, "demand", "demand (MW)"), ("x.csv", "y", "y")]
)
def test_the_forecast_plots_value_axis_carries_the_unit(tmp_path, monkeypatch, path, target, label) -> None:
    cfg = config_from_dict(
        {
            "data": {"path": path, "target": target},
            "split": {"train": 36, "val": 12, "test": 12},
            "window": {"input_size": L, "horizon": H},
            "evaluate": {"seasonal_period": PERIOD, "plot_windows": 2},
        }
    )
    paths = Paths.from_root(tmp_path)
    paths.validated.mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=N_ROWS, freq="30min"),
            target: 100 + 10 * _series()[:, 0].astype(np.float64),
        }
    )
    frame.to_parquet(paths.validated / VALIDATED_FILE, index=False)
    write_json(paths.validated / VALIDATED_META, {"freq": "30min"})
    run_window(cfg.data, cfg.split, cfg.window, paths)
    save_model(_model("repeat_last"), paths.models / "model.pt")
    labels: list[str] = []
    original = matplotlib.axes.Axes.set_ylabel

    def record(self, text, *args, **kwargs):
        labels.append(str(text))
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", record)

    run_evaluate(cfg.data, cfg.evaluate, cfg.forecast, paths)

    assert label in labels
    assert "MSE (train-fit standard scale, unitless)" in labels
