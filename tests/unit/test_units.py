"""Plots' value axes carry the data's unit: MW for the default data, the target's name otherwise."""

from __future__ import annotations

import matplotlib.axes
import pytest

from tests.helpers.eval_fixtures import PERIOD, pattern_frame, write_repo
from tsforecast.config import BUILTIN_TAYLOR, load_config
from tsforecast.evaluation.evaluate import run_evaluate
from tsforecast.evaluation.units import value_label

L, H = 8, 3


def test_the_default_data_is_in_megawatts() -> None:
    assert value_label(BUILTIN_TAYLOR, "demand") == "demand (MW)"


def test_a_users_file_is_labelled_with_its_target() -> None:
    assert value_label("data/external/load.csv", "load") == "load"
    assert value_label("data/external/load.csv", "demand") == "demand"


@pytest.mark.parametrize(
    ("path", "target", "label", "S"), [(BUILTIN_TAYLOR, "demand", "demand (MW)", 1), ("x.csv", "y", "y", 3)]
)
def test_the_forecast_plots_value_axis_carries_the_unit(
    tmp_path, monkeypatch, path, target, label, S
) -> None:
    paths = write_repo(
        tmp_path,
        pattern_frame(S),
        {"train": 36, "val": 12, "test": 12},
        {"input_size": L, "horizon": H},
        evaluate={"seasonal_period": PERIOD, "plot_windows": 2},
    )
    cfg = load_config(paths.params)
    data = cfg.data.model_copy(update={"path": path, "target": target})  # the label reads only these
    labels: list[str] = []
    original = matplotlib.axes.Axes.set_ylabel

    def record(self, text, *args, **kwargs):
        labels.append(str(text))
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", record)

    run_evaluate(data, cfg.evaluate, cfg.forecast, paths)

    assert label in labels
    assert "MSE (train-fit standard scale, unitless)" in labels
