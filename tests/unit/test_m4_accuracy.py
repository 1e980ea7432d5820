"""benchmarks/m4_accuracy.py: the search trains on the rows before the carved windows, logs every trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import m4_accuracy


def test_carving_trains_on_every_row_before_val_and_scores_the_last_48() -> None:
    cfg = m4_accuracy.trial_config({**m4_accuracy.QUICK})
    panel = m4_accuracy.m4_panel(cfg, n_series=2)
    n = panel.lengths
    assert panel.bounds[:, 0].tolist() == [[0, k - 96] for k in n]  # train: every row before val
    assert panel.bounds[:, 1].tolist() == [[k - 96, k - 48] for k in n]  # early-stopping part
    assert panel.bounds[:, 2].tolist() == [[k - 48, k] for k in n]  # the scored target
    first = panel.series(0)[: n[0] - 96, 0].astype(np.float64)
    assert panel.mean[0, 0] == pytest.approx(first.mean())
    assert panel.std[0, 0] == pytest.approx(first.std())
    assert panel.window_index("test")[:, 1].tolist() == (n - 48 - 48).tolist()  # one window per series


def test_quick_run_logs_one_trial_per_config_and_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "acc.json"
    for _ in range(2):  # a rerun replaces its entry
        assert m4_accuracy.main(["--quick", "--final", "--output", str(out)]) == 0
    log = json.loads(out.read_text())
    (trial,) = log["trials"]
    assert trial["n_series"] == 5 and trial["seed"] == 0
    assert np.isfinite([trial["owa"], trial["smape"], trial["mase"]]).all()
    assert trial["baselines"]["naive2"]["owa"] == 1.0
    final = log["final"]
    assert final["owa"]["median"] == trial["owa"]
    assert "-S data.path=builtin:m4-hourly" in final["dvc_exp_run"]
    assert "-S window.input_size=48" in final["dvc_exp_run"] and "-S split.val=48" in final["dvc_exp_run"]
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "OWA"


def test_set_needs_key_equals_value() -> None:
    assert m4_accuracy.parse_set(["train.lr=0.001", "model.window_norm=mean_std"]) == {
        "train.lr": 0.001,
        "model.window_norm": "mean_std",
    }
    with pytest.raises(SystemExit, match="expected key=value"):
        m4_accuracy.parse_set(["train.lr"])


def test_trials_of_fit_panel_count_as_the_pipeline_trainer(capsys: pytest.CaptureFixture[str]) -> None:
    overrides = {"window.input_size": 168}
    scores = {"owa": 0.55, "smape": 13.0, "mase": 1.0, "early_stop_part": {"owa": 0.5}}
    base = {"overrides": overrides, "best_epoch": 3, "train_seconds": 1.0, **scores}
    baselines = {"seasonal_naive": {"owa": 0.63}, "naive2": {"owa": 1.0}}
    trials = [  # fit_panel: the same trainer before it merged into train.fit
        {**base, "seed": 0, "trainer": "tsforecast.training.panel_train.fit_panel", "baselines": baselines},
        {**base, "seed": 1, "trainer": m4_accuracy.TRAINER, "baselines": baselines, "owa": 0.57},
        {**base, "seed": 2, "trainer": "interim", "baselines": baselines},
    ]
    final = m4_accuracy.summarise(trials, overrides)
    assert final["seeds"] == [0, 1] and final["owa"]["median"] == pytest.approx(0.56)
    assert m4_accuracy._same_run(trials[0], overrides, 0)  # a rerun at seed 0 replaces it
    assert not m4_accuracy._same_run(trials[2], overrides, 2)
    table = m4_accuracy.format_table({"trials": trials})
    assert table.count("[interim loop]") == 1
