"""panel_train: global training on a tiny panel: epoch size, resume, per-series scalers, the stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.panel_fixtures import (
    ID,
    TS,
    fixture_quiet_training,  # noqa: F401
    make_panel,
    panel_cfg,
    panel_frame,
    write_panel_repo,
)
from tsforecast.errors import TrainingError
from tsforecast.evaluation.intervals import INTERVALS_KEY, Calibration
from tsforecast.io import read_json
from tsforecast.training import panel_train as panel_train_mod
from tsforecast.training.model import load_model
from tsforecast.training.panel_train import (
    AUTO_WINDOWS_PER_EPOCH,
    fit_panel,
    panel_residuals,
    val_index,
    windows_per_epoch,
)
from tsforecast.training.train import CHECKPOINT, run_train

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("quiet_training")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.mark.parametrize("n_series", [3, 40])
def test_an_epoch_is_the_configured_number_of_windows_whatever_the_series_count(n_series):
    cfg = panel_cfg(train__windows_per_epoch=48, train__epochs=2)
    panel = make_panel(cfg, panel_frame(n_series))
    _, info = fit_panel(cfg, panel, CPU, progress=False)
    assert info["samples"] == 2 * 48  # 48 sampled windows per epoch, for 3 or 40 series alike
    assert info["windows_per_epoch"] == 48 and info["n_series"] == n_series
    assert info["n_train_windows"] == panel.windows("train").total  # the panel's full set, for reference


def test_auto_windows_per_epoch_is_16384():
    assert (
        windows_per_epoch(panel_cfg(train__windows_per_epoch="auto").train) == AUTO_WINDOWS_PER_EPOCH == 16384
    )
    assert windows_per_epoch(panel_cfg(train__windows_per_epoch=100).train) == 100


def test_fit_panel_returns_a_cpu_model_in_eval_mode_and_its_val_loss_is_the_val_mse():
    cfg = panel_cfg()
    panel = make_panel(cfg, panel_frame(5))
    model, info = fit_panel(cfg, panel, CPU, progress=False)
    assert next(model.parameters()).device.type == "cpu" and not model.training
    idx, total = val_index(panel, cfg.train.seed)
    assert len(idx) == total == info["n_val_windows"] and not info["val_sampled"]
    mse = float(np.mean(panel_residuals(model, panel, idx, CPU) ** 2))
    assert mse == pytest.approx(info["best_val_loss"], rel=1e-6)
    assert all(math.isfinite(h["val_loss"]) for h in info["history"])


def test_val_windows_beyond_the_cap_are_a_fixed_seeded_sample():
    cfg = panel_cfg()
    panel = make_panel(cfg, panel_frame(6))
    total = panel.windows("val").total
    a, n = val_index(panel, seed=1, cap=10)
    b, _ = val_index(panel, seed=1, cap=10)
    c, _ = val_index(panel, seed=2, cap=10)
    assert n == total > 10 and len(a) == 10
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    all_windows = {tuple(r) for r in panel.window_index("val")}
    assert {tuple(r) for r in a} <= all_windows


def test_sampling_by_series_and_by_windows_both_train(monkeypatch):
    for by in ("series", "windows"):
        cfg = panel_cfg(train__sample_by=by, train__epochs=1)
        _, info = fit_panel(cfg, make_panel(cfg, panel_frame(4)), CPU, progress=False)
        assert info["sample_by"] == by and info["epochs"] == 1


def test_panel_of_another_window_is_refused_naming_both():
    cfg = panel_cfg()
    panel = make_panel(cfg, panel_frame(3))
    other = panel_cfg(window__input_size=10)
    with pytest.raises(
        TrainingError, match=r"built for \(input_size, horizon\)=\(12, 4\) but params say \(10, 4\)"
    ):
        fit_panel(other, panel, CPU, progress=False)


@pytest.mark.parametrize("shards", [1, 2])
def test_a_panel_run_interrupted_after_an_epoch_resumes_to_the_unbroken_result(tmp_path, monkeypatch, shards):
    cfg = panel_cfg(
        train__epochs=3, train__resume=True, train__cpu_shards=shards, model__dropout=0.2, model__num_layers=2
    )
    panel = make_panel(cfg, panel_frame(5))
    unbroken_model, unbroken = fit_panel(cfg, panel, CPU, tmp_path / "a.pt", "fp", progress=False)

    ckpt = tmp_path / CHECKPOINT
    real = panel_train_mod.panel_residuals
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed after epoch 3's steps, before its checkpoint
        return real(*args, **kwargs)

    monkeypatch.setattr(panel_train_mod, "panel_residuals", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit_panel(cfg, panel, CPU, ckpt, "fp", progress=False)
    monkeypatch.setattr(panel_train_mod, "panel_residuals", real)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 2

    resumed_model, resumed = fit_panel(cfg, panel, CPU, ckpt, "fp", progress=False)
    assert resumed["resumed_from_epoch"] == 2
    assert _without_timing(resumed["history"]) == _without_timing(unbroken["history"])
    assert _same_weights(resumed_model, unbroken_model)


def test_run_train_on_a_panel_writes_per_series_scalers_intervals_and_panel_metrics(tmp_path):
    cfg = panel_cfg(train__resume=True)
    frame = panel_frame(4)
    paths = write_panel_repo(tmp_path, cfg, frame)

    result = run_train(cfg.window, cfg.model, cfg.train, paths)

    model, extra = load_model(paths.models / "model.pt")
    assert extra["id_column"] == ID and extra["timestamp_column"] == TS and extra["columns"] == ["y"]
    sc = extra["series_scalers"]
    assert sc["ids"] == ["s0", "s1", "s2", "s3"]
    for i, sid in enumerate(sc["ids"]):  # each series' own train rows (the first 60 % of 60 rows)
        y = frame.loc[frame[ID] == sid, "y"].to_numpy()[:36]
        assert sc["mean"][i][0] == pytest.approx(y.astype(np.float32).mean(), rel=1e-5)
        assert sc["std"][i][0] == pytest.approx(y.astype(np.float32).std(), rel=1e-4)
    assert extra["scaler"]["mean"][0] == pytest.approx(np.median([m[0] for m in sc["mean"]]))
    calibration = Calibration.from_extra(extra)
    assert calibration.n == make_panel(cfg, frame).windows("val").total and extra[INTERVALS_KEY]["quantiles"]
    metrics = read_json(paths.metrics / "train.json")
    contract = {"epochs", "best_val_loss", "train_seconds", "samples_per_second", "device", "n_params"}
    assert contract <= set(metrics)
    assert (metrics["n_series"], metrics["windows_per_epoch"], metrics["sample_by"]) == (4, 64, "series")
    assert metrics["val_sampled"] is False and result.epochs == 2 and result.device == "cpu"
    meta = read_json(paths.models / "meta.json")
    assert "series_scalers" not in meta and meta["id_column"] == ID  # the big table stays in model.pt
    assert not (paths.checkpoints / CHECKPOINT).exists()
    assert model.args.n_features == 1


def test_cuda_is_chosen_for_a_panel_when_present_and_asked_for(tmp_path, monkeypatch):
    """The GPU pool trains the global model: device selection reaches fit_panel (CUDA faked here,
    the model then trains on the CPU device it is handed)."""
    seen = {}

    def fake_fit(cfg, panel, device, *args, **kwargs):
        seen["device"] = device
        return fit_panel(cfg, panel, CPU, *args, **kwargs)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(panel_train_mod, "fit_panel", fake_fit)
    cfg = panel_cfg(train__device="auto", train__epochs=1)
    paths = write_panel_repo(tmp_path, cfg, panel_frame(3))
    result = run_train(cfg.window, cfg.model, cfg.train, paths)
    assert seen["device"] == torch.device("cuda") and result.device == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_panel_on_cuda_trains_and_hands_back_a_cpu_model():
    cfg = panel_cfg(train__device="cuda")
    panel = make_panel(cfg, panel_frame(5))
    model, info = fit_panel(cfg, panel, torch.device("cuda"), progress=False)
    assert next(model.parameters()).device.type == "cpu"
    idx, _ = val_index(panel, cfg.train.seed)
    mse = float(np.mean(panel_residuals(model, panel, idx, CPU) ** 2))
    assert mse == pytest.approx(info["best_val_loss"], rel=1e-2)
