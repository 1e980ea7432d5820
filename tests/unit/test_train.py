"""train.py: device choice, mixed precision, CPU sharding, and training on one series and a tiny panel.

There is no GPU on the build machines: the CUDA paths are covered by patching torch's
device queries (``torch.cuda.is_available``, ``device_count``, ``is_bf16_supported``);
only one smoke test needs a real CUDA device and is skipped without one.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tsforecast.config import Config, TrainConfig, load_config
from tsforecast.dataset.long import SERIES_ID
from tsforecast.dataset.panel import Panel, build_panel, save_panel
from tsforecast.errors import ConfigError, TrainingError
from tsforecast.evaluation.intervals import Calibration
from tsforecast.io import read_json
from tsforecast.paths import Paths
from tsforecast.training import inference as inference_mod
from tsforecast.training import train as train_mod
from tsforecast.training.card import ModelCard
from tsforecast.training.inference import amp_context, cpu_has_native_bf16, select_device
from tsforecast.training.model import LSTMForecaster, load_model
from tsforecast.training.step import PlainStep, ShardedStep, cpu_shards, make_step
from tsforecast.training.train import (
    AUTO_WINDOWS_PER_EPOCH,
    CHECKPOINT,
    build_model,
    fit,
    residuals,
    run_train,
    seed_everything,
    val_index,
    windows_per_epoch,
)

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
L, H = 24, 6  # window of the tiny series: one "day" in, a quarter of one out
ROWS = 600
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fp32_and_thread_count(monkeypatch):
    """fp32 on the CPU unless a test asks otherwise (results then do not depend on the CPU's
    bf16 support), and torch's thread count put back even if a test fails mid-way."""
    monkeypatch.setenv("TSFORECAST_CPU_BF16", "0")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cfg(**overrides) -> Config:
    """params.yaml shrunk to the tiny series; ``overrides`` use dotted keys with ``__`` for ``.``."""
    values = {
        "split.train": 0.7,
        "split.val": 0.1,
        "split.test": 0.2,
        "window.input_size": L,
        "window.horizon": H,
        "window.stride": 1,
        "evaluate.seasonal_period": 12,
        "model.hidden_size": 8,
        "model.num_layers": 1,
        "model.dropout": 0.0,
        "train.epochs": 3,
        "train.batch_size": 32,
        "train.patience": 10,
        "train.seed": 0,
        "train.device": "cpu",
        "train.resume": False,
        "train.cpu_shards": 1,
    }
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load_config(PARAMS, values)


def _frame(rows: int = ROWS, seed: int = 0, n_series: int = 1) -> pd.DataFrame:
    """Daily sines plus noise (target ``y``) and a phase-shifted covariate ``x``, hourly; one
    series under the implicit id, or ``n_series`` of different levels under ids s0, s1, ..."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    parts = []
    for i in range(n_series):
        target = 3.0 * i + (1 + i % 2) * np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(rows)
        cov = np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(rows)
        sid = "y" if n_series == 1 else f"s{i}"
        ts = pd.date_range("2024-01-01", periods=rows, freq="h")
        parts.append(pd.DataFrame({SERIES_ID: sid, "timestamp": ts, "y": target, "x": cov}))
    return pd.concat(parts, ignore_index=True)


def _panel(cfg: Config, rows: int = ROWS, seed: int = 0, n_series: int = 1) -> Panel:
    """The panel the window stage builds: one series is a panel of one (id_column None)."""
    panel = build_panel(
        _frame(rows, seed, n_series),
        id_column=SERIES_ID,
        timestamp_column="timestamp",
        columns=["y", "x"],
        split=cfg.split,
        window=cfg.window,
        freq="h",
        anchor=cfg.split.anchor_for(n_series),
    )
    return replace(panel, id_column=None if n_series == 1 else SERIES_ID)


def _windows(panel: Panel, part: str) -> np.ndarray:
    return panel.window_index(part)


def _val_mse(model: nn.Module, panel: Panel) -> float:
    idx, _ = val_index(panel, seed=0)
    return float(np.mean(residuals(model, panel, idx, CPU) ** 2))


def _without_timing(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _fake_cuda(monkeypatch, available: bool = True, count: int = 1, bf16: bool = True) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


# ---------------------------------------------------------------- select_device


def test_auto_device_is_the_cpu_without_cuda(monkeypatch):
    _fake_cuda(monkeypatch, available=False)
    assert select_device("auto") == torch.device("cpu")


def test_auto_device_is_cuda_when_cuda_is_available(monkeypatch):
    _fake_cuda(monkeypatch, available=True)
    assert select_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("available", [False, True])
def test_cpu_device_is_the_cpu_whether_or_not_cuda_exists(monkeypatch, available):
    _fake_cuda(monkeypatch, available=available, count=2)
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("preference", ["cuda", "cuda:0", "cuda:1"])
def test_explicit_cuda_without_cuda_names_the_value_and_the_fix(monkeypatch, preference):
    _fake_cuda(monkeypatch, available=False)
    message = f"train.device={preference!r} but no CUDA device is available; use train.device: auto or cpu"
    with pytest.raises(TrainingError, match=re.escape(message)):
        select_device(preference)


@pytest.mark.parametrize(
    ("preference", "count", "expected"),
    [("cuda", 1, "cuda"), ("cuda:0", 1, "cuda:0"), ("cuda:1", 2, "cuda:1"), ("cuda:3", 4, "cuda:3")],
)
def test_explicit_cuda_device_that_exists_is_returned(monkeypatch, preference, count, expected):
    _fake_cuda(monkeypatch, available=True, count=count)
    assert select_device(preference) == torch.device(expected)


@pytest.mark.parametrize(("preference", "count"), [("cuda:1", 1), ("cuda:2", 2), ("cuda:8", 1)])
def test_cuda_index_beyond_the_device_count_names_the_value_and_the_count(monkeypatch, preference, count):
    _fake_cuda(monkeypatch, available=True, count=count)
    message = f"train.device={preference!r} but only {count} CUDA device(s) exist"
    with pytest.raises(TrainingError, match=re.escape(message)):
        select_device(preference)


# ---------------------------------------------------------------- cpu_has_native_bf16 / amp_context


def _cpu_bf16_helpers(monkeypatch, amx: bool, avx512_bf16: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(True, False, True), (False, True, True), (True, True, True), (False, False, False)],
)
def test_native_bf16_follows_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.delenv("TSFORECAST_CPU_BF16")
    _cpu_bf16_helpers(monkeypatch, amx, avx512_bf16)
    assert cpu_has_native_bf16() is expected


def test_env_switch_turns_native_bf16_off_even_on_a_bf16_cpu(monkeypatch):
    _cpu_bf16_helpers(monkeypatch, True, True)
    monkeypatch.setenv("TSFORECAST_CPU_BF16", "0")
    assert cpu_has_native_bf16() is False
    assert isinstance(amp_context(CPU, train=True), contextlib.nullcontext)
    monkeypatch.setenv("TSFORECAST_CPU_BF16", "1")  # only "0" switches it off
    assert cpu_has_native_bf16() is True


def test_native_bf16_is_false_when_torch_lacks_or_fails_the_cpu_probes(monkeypatch):
    monkeypatch.delenv("TSFORECAST_CPU_BF16")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert cpu_has_native_bf16() is False

    def broken() -> bool:
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert cpu_has_native_bf16() is False


@pytest.mark.parametrize("native_bf16", [False, True])
def test_cpu_evaluation_never_autocasts(monkeypatch, native_bf16):
    monkeypatch.setattr(inference_mod, "cpu_has_native_bf16", lambda: native_bf16)
    ctx = amp_context(CPU)
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32


def test_cpu_training_autocasts_to_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(inference_mod, "cpu_has_native_bf16", lambda: True)
    ctx = amp_context(CPU, train=True)
    assert isinstance(ctx, torch.autocast)
    assert (ctx.device, ctx.fast_dtype) == ("cpu", torch.bfloat16)
    with ctx:
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_cpu_training_stays_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(inference_mod, "cpu_has_native_bf16", lambda: False)
    ctx = amp_context(CPU, train=True)
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(("bf16", "dtype"), [(True, torch.bfloat16), (False, torch.float16)])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_autocasts_to_bf16_where_supported_else_fp16(monkeypatch, train, bf16, dtype, device):
    # torch.autocast(device_type="cuda") can be built without a GPU: it only asks
    # torch.cuda.is_available() (patched here) whether to disable itself, and for bf16 asks
    # torch.cuda.is_bf16_supported(). Entering it is not needed: the object says what it would do.
    _fake_cuda(monkeypatch, available=True, bf16=bf16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "CUDA is not available ... Disabling autocast" would fail here
        ctx = amp_context(torch.device(device), train=train)
    assert isinstance(ctx, torch.autocast)
    assert (ctx.device, ctx.fast_dtype) == ("cuda", dtype)


def test_other_devices_get_no_autocast():
    assert isinstance(amp_context(torch.device("meta"), train=True), contextlib.nullcontext)


# ---------------------------------------------------------------- cpu_shards


@pytest.mark.parametrize(
    ("threads", "batch_size", "expected"),
    [
        (2, 64, 2),  # threads bind
        (16, 64, 4),  # at least 16 windows per shard
        (32, 1024, 8),  # never more than 8
        (8, 48, 3),
        (4, 8, 1),  # batch_size // 16 == 0: still one shard
        (1, 512, 1),
    ],
)
def test_auto_shards_is_threads_capped_by_batch_and_eight(monkeypatch, threads, batch_size, expected):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    cfg = TrainConfig(cpu_shards="auto", batch_size=batch_size)
    assert cpu_shards(cfg, CPU) == expected == max(1, min(threads, batch_size // 16, 8))


@pytest.mark.parametrize("shards", [1, 3, 12])
def test_explicit_shards_are_used_as_given_on_the_cpu(monkeypatch, shards):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert cpu_shards(TrainConfig(cpu_shards=shards, batch_size=16), CPU) == shards


@pytest.mark.parametrize("setting", ["auto", 4])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_never_shards(monkeypatch, setting, device):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert cpu_shards(TrainConfig(cpu_shards=setting, batch_size=256), torch.device(device)) == 1


@pytest.mark.parametrize("value", ["auto", 1, 4])
def test_config_accepts_auto_or_a_positive_shard_count(value):
    assert load_config(PARAMS, {"train.cpu_shards": value}).train.cpu_shards == value


@pytest.mark.parametrize("value", [0, -2, "many", 2.5])
def test_config_rejects_a_bad_shard_count_naming_the_key(value):
    with pytest.raises(ConfigError, match=re.escape("train.cpu_shards")):
        load_config(PARAMS, {"train.cpu_shards": value})


@pytest.mark.parametrize("value", [0, "many"])
def test_config_error_for_a_bad_shard_count_quotes_the_key_and_the_value(value):
    """config.py promises the dotted key and the bad value, as for every other key
    (e.g. ``train.batch_size=0 is invalid``)."""
    with pytest.raises(ConfigError) as e:
        load_config(PARAMS, {"train.cpu_shards": value})
    assert f"train.cpu_shards={value!r} is invalid" in str(e.value)


# ---------------------------------------------------------------- build_model


def test_build_model_takes_its_arguments_from_the_config():
    cfg = _cfg(
        model__cell="gru",
        model__hidden_size=12,
        model__num_layers=2,
        model__dropout=0.3,
        model__linear_skip=False,
    )
    model = build_model(cfg, n_features=3)
    assert model.args.n_features == 3
    assert (model.args.input_size, model.args.horizon) == (L, H)
    assert (model.args.cell, model.args.hidden_size, model.args.num_layers) == ("gru", 12, 2)
    assert model.args.dropout == pytest.approx(0.3)
    assert model.skip is None
    assert isinstance(model.rnn[0], nn.GRU)


# ---------------------------------------------------------------- ShardedStep


def _model(num_layers: int = 1, dropout: float = 0.0) -> LSTMForecaster:
    torch.manual_seed(0)
    model = LSTMForecaster(
        n_features=2, input_size=L, horizon=H, hidden_size=8, num_layers=num_layers, dropout=dropout
    )
    with torch.no_grad():  # the skip starts at zero; give it weights so its gradient is not trivial
        model.skip.weight.normal_(0.0, 0.1)
    return model.train()


def _xy(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, L, 2, generator=g), torch.randn(n, H, generator=g)


def _sharded_grads(model, x, y, loss_fn, shards, seed=0, epoch=1):
    model.zero_grad(set_to_none=True)
    step = ShardedStep(model, loss_fn, shards, seed)
    try:
        step.start_epoch(epoch)
        loss = step(x, y)
    finally:
        step.close()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return loss, grads


@pytest.mark.parametrize("loss_fn", [nn.MSELoss(), nn.HuberLoss(delta=1.0)], ids=["mse", "huber"])
@pytest.mark.parametrize(("n", "shards"), [(37, 3), (37, 2), (64, 4), (3, 4), (1, 2)])
def test_sharded_gradients_and_loss_equal_the_full_batch_ones(loss_fn, n, shards):
    model = _model()
    x, y = _xy(n)
    y = y * 3  # errors beyond huber's delta too
    full = loss_fn(model(x), y)
    full.backward()
    expected = [p.grad.clone() for p in model.parameters()]

    loss, grads = _sharded_grads(model, x, y, loss_fn, shards)

    assert loss == pytest.approx(full.item(), rel=1e-5)
    names = [name for name, _ in model.named_parameters()]
    for name, g, e in zip(names, grads, expected, strict=True):
        assert g is not None, f"{name} got no gradient"
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-4, msg=name)


def test_sharded_step_gives_each_shard_a_share_of_the_threads_and_close_restores_them():
    torch.set_num_threads(4)
    step = ShardedStep(_model(), nn.MSELoss(), shards=2, seed=0)
    try:
        assert torch.get_num_threads() == 2
    finally:
        step.close()
    assert torch.get_num_threads() == 4

    step = ShardedStep(_model(), nn.MSELoss(), shards=8, seed=0)  # more shards than threads: still one each
    try:
        assert torch.get_num_threads() == 1
    finally:
        step.close()
    assert torch.get_num_threads() == 4


def test_sharded_dropout_is_reproducible_from_seed_and_epoch_alone():
    model = _model(num_layers=2, dropout=0.5)
    x, y = _xy(37)
    torch.manual_seed(123)
    loss_a, a = _sharded_grads(model, x, y, nn.MSELoss(), shards=3, seed=7, epoch=3)
    torch.manual_seed(999)  # the global RNG plays no part
    loss_b, b = _sharded_grads(model, x, y, nn.MSELoss(), shards=3, seed=7, epoch=3)
    assert loss_a == loss_b
    for ga, gb in zip(a, b, strict=True):
        assert torch.equal(ga, gb)

    # the control: dropout is really on, so another epoch (or seed) draws other masks
    loss_c, c = _sharded_grads(model, x, y, nn.MSELoss(), shards=3, seed=7, epoch=4)
    loss_d, d = _sharded_grads(model, x, y, nn.MSELoss(), shards=3, seed=8, epoch=3)
    assert loss_c != loss_a and loss_d != loss_a
    assert not all(torch.equal(ga, gc) for ga, gc in zip(a, c, strict=True))
    assert not all(torch.equal(ga, gd) for ga, gd in zip(a, d, strict=True))


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_make_step_gives_one_interface_whatever_the_shard_count(shards):
    """The loop never asks which step it has: both leave the full batch's gradients and loss."""
    model = _model()
    x, y = _xy(37)
    loss_fn = nn.MSELoss()
    expected_loss = loss_fn(model(x), y)
    expected_loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)

    step = make_step(model, loss_fn, torch.amp.GradScaler("cuda", enabled=False), shards, seed=0)
    try:
        assert isinstance(step, ShardedStep if shards > 1 else PlainStep)
        step.start_epoch(1)
        loss = step(x, y)
    finally:
        step.close()

    assert loss == pytest.approx(expected_loss.item(), rel=1e-5)
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------- fit


@pytest.mark.parametrize(("shards", "n_series"), [(1, 1), (2, 1), (1, 3)])
def test_fit_twice_with_the_same_params_gives_the_same_history_and_weights(shards, n_series):
    cfg = _cfg(model__num_layers=2, model__dropout=0.2, train__cpu_shards=shards, train__epochs=2)
    panel = _panel(cfg, n_series=n_series)
    model_a, info_a = fit(cfg, panel, CPU, progress=False)
    model_b, info_b = fit(cfg, panel, CPU, progress=False)
    assert len(info_a["history"]) == 2
    assert _without_timing(info_a["history"]) == _without_timing(info_b["history"])
    assert info_a["best_val_loss"] == info_b["best_val_loss"]
    _assert_same_weights(model_a, model_b)
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in info_a["history"])


def test_fit_with_forced_bf16_is_reproducible_and_really_autocasts(monkeypatch):
    cfg = _cfg(train__epochs=1)
    panel = _panel(cfg)
    _, fp32 = fit(cfg, panel, CPU, progress=False)
    monkeypatch.setattr(inference_mod, "cpu_has_native_bf16", lambda: True)
    model_a, bf16_a = fit(cfg, panel, CPU, progress=False)
    model_b, bf16_b = fit(cfg, panel, CPU, progress=False)
    assert _without_timing(bf16_a["history"]) == _without_timing(bf16_b["history"])
    _assert_same_weights(model_a, model_b)
    assert math.isfinite(bf16_a["best_val_loss"])
    # the training step ran in bf16: its loss differs from the fp32 run's, though not by much
    assert bf16_a["history"][0]["train_loss"] != fp32["history"][0]["train_loss"]
    assert bf16_a["history"][0]["train_loss"] == pytest.approx(fp32["history"][0]["train_loss"], rel=0.05)
    assert next(model_a.parameters()).dtype == torch.float32  # weights stay fp32


def test_fit_returns_a_cpu_model_in_eval_mode_and_complete_info():
    cfg = _cfg(train__epochs=2)
    panel = _panel(cfg)
    model, info = fit(cfg, panel, CPU, progress=False)
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    assert info["epochs"] == 2 and [h["epoch"] for h in info["history"]] == [1, 2]
    assert info["n_train_windows"] == len(_windows(panel, "train"))
    assert info["n_val_windows"] == len(_windows(panel, "val"))
    assert info["samples"] == 2 * info["n_train_windows"]
    assert info["n_params"] == model.n_params()
    assert info["resumed_from_epoch"] == 0 and info["stopped_early"] is False
    assert info["best_val_loss"] == min(h["val_loss"] for h in info["history"])


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    # A large constant lr makes the val loss jump about, so some epoch is followed by
    # `patience` worse ones long before `epochs` runs out.
    epochs, patience = 40, 2
    cfg = _cfg(train__epochs=epochs, train__patience=patience, train__lr=0.05, train__lr_schedule="constant")
    panel = _panel(cfg)
    model, info = fit(cfg, panel, CPU, progress=False)
    history, best_epoch, best = info["history"], info["best_epoch"], info["best_val_loss"]

    assert info["stopped_early"] is True
    assert len(history) < epochs
    assert len(history) == best_epoch + patience  # stopped right after `patience` bad epochs
    assert history[best_epoch - 1]["val_loss"] == best == min(h["val_loss"] for h in history)
    assert history[-1]["val_loss"] > best
    # the model handed back is the best epoch's, not the last one's
    assert _val_mse(model, panel) == pytest.approx(best, rel=1e-6)
    assert _val_mse(model, panel) != pytest.approx(history[-1]["val_loss"], rel=1e-6)


def test_no_early_stop_while_val_loss_keeps_improving_within_patience():
    cfg = _cfg(train__epochs=3, train__patience=5)
    _, info = fit(cfg, _panel(cfg), CPU, progress=False)
    assert info["epochs"] == 3 and info["stopped_early"] is False


def test_cosine_schedule_lowers_the_lr_to_five_percent_by_the_last_epoch():
    epochs, lr = 4, 0.01
    cfg = _cfg(train__epochs=epochs, train__lr=lr, train__lr_schedule="cosine")
    panel = _panel(cfg)
    _, info = fit(cfg, panel, CPU, progress=False)
    lrs = [h["lr"] for h in info["history"]]
    assert len(lrs) == epochs
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False)), lrs
    eta_min = 0.05 * lr
    for e, got in enumerate(lrs, start=1):
        expected = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * e / epochs)) / 2
        assert got == pytest.approx(expected, rel=1e-6), e
    assert lrs[-1] == pytest.approx(eta_min, rel=1e-6)


def test_constant_schedule_keeps_the_lr():
    cfg = _cfg(train__epochs=3, train__lr=0.01, train__lr_schedule="constant")
    _, info = fit(cfg, _panel(cfg), CPU, progress=False)
    assert [h["lr"] for h in info["history"]] == pytest.approx([0.01] * 3, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "loss_fn"), [("mse", nn.MSELoss()), ("huber", nn.HuberLoss(delta=1.0)), ("mae", nn.L1Loss())]
)
def test_first_epoch_train_loss_is_the_configured_loss_of_the_initial_model(name, loss_fn):
    # one batch per epoch: epoch 1's train loss is the loss of the initial weights on every window
    cfg = _cfg(train__epochs=1, train__batch_size=4096, train__loss=name)
    panel = _panel(cfg)
    _, info = fit(cfg, panel, CPU, progress=False)
    seed_everything(cfg.train.seed)  # fit seeds, then builds the model: the same initial weights
    initial = build_model(cfg, n_features=2)
    index = _windows(panel, "train")
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) for a in panel.gather(index[:, 0], index[:, 1]))
    with torch.no_grad():
        pred = initial.train()(x)
        expected = loss_fn(pred, y).item()
        other = (nn.HuberLoss() if name == "mse" else nn.MSELoss())(pred, y).item()
    assert info["history"][0]["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(other, rel=1e-3)  # the two losses are told apart here


def test_huber_loss_trains_the_model():
    cfg = _cfg(train__epochs=3, train__loss="huber", train__lr=0.01)
    panel = _panel(cfg)
    model, info = fit(cfg, panel, CPU, progress=False)
    seed_everything(cfg.train.seed)
    untrained = build_model(cfg, n_features=2)
    history = info["history"]
    assert all(math.isfinite(h["train_loss"]) for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert _val_mse(model, panel) < 0.5 * _val_mse(untrained, panel)


def _with_bounds(panel: Panel, train: tuple[int, int], val: tuple[int, int], test: tuple[int, int]) -> Panel:
    bounds = np.array([[train, val, test]], dtype=np.int64)  # (1, 3, 2)
    return replace(panel, bounds=bounds, look_back=True)


def test_fit_without_train_windows_names_the_split_and_the_window():
    cfg = _cfg()
    panel = _with_bounds(_panel(cfg, rows=120), (0, L + H - 1), (29, 80), (80, 120))
    with pytest.raises(
        TrainingError, match=re.escape("no train windows in any series; check split.* and window.*")
    ):
        fit(cfg, panel, CPU, progress=False)


def test_fit_without_val_windows_names_the_split_and_the_window():
    cfg = _cfg()
    panel = _with_bounds(_panel(cfg, rows=120), (0, 80), (80, 80 + H - 1), (85, 120))
    with pytest.raises(
        TrainingError, match=re.escape("no val windows in any series; check split.* and window.*")
    ):
        fit(cfg, panel, CPU, progress=False)


def test_a_nan_loss_stops_training_naming_the_epoch_the_batch_and_the_fix(monkeypatch):
    cfg = _cfg(train__epochs=2)
    panel = _panel(cfg)
    real = nn.MSELoss()

    class NanAtSecondBatch(nn.Module):
        calls = 0

        def forward(self, pred, y):
            NanAtSecondBatch.calls += 1
            out = real(pred, y)
            return out * float("nan") if NanAtSecondBatch.calls == 2 else out

    monkeypatch.setattr(train_mod, "make_loss", lambda name: NanAtSecondBatch())
    steps = math.ceil(len(_windows(panel, "train")) / cfg.train.batch_size)
    message = f"train loss is nan at epoch 1, batch 2/{steps}; training stopped - lower train.lr"
    with pytest.raises(TrainingError, match=re.escape(message)):
        fit(cfg, panel, CPU, progress=False)


# ---------------------------------------------------------------- checkpoints and resume


@pytest.mark.parametrize(("shards", "n_series"), [(1, 1), (2, 1), (1, 3), (2, 3)])
def test_a_run_interrupted_after_an_epoch_resumes_to_the_unbroken_result(
    tmp_path, monkeypatch, shards, n_series
):
    cfg = _cfg(
        train__epochs=3, train__resume=True, train__cpu_shards=shards, model__num_layers=2, model__dropout=0.2
    )
    if n_series > 1:  # a sampled epoch: the resumed run must draw the windows an unbroken one would
        cfg = _cfg(
            train__epochs=3,
            train__resume=True,
            train__cpu_shards=shards,
            model__num_layers=2,
            model__dropout=0.2,
            train__windows_per_epoch=96,
        )
    panel = _panel(cfg, n_series=n_series)
    unbroken_model, unbroken = fit(cfg, panel, CPU, tmp_path / "a.pt", "fp", progress=False)

    ckpt = tmp_path / CHECKPOINT
    real_predict = train_mod.residuals
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed after epoch 3's steps, before its checkpoint
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(train_mod, "residuals", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, panel, CPU, ckpt, "fp", progress=False)
    monkeypatch.setattr(train_mod, "residuals", real_predict)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 2

    resumed_model, resumed = fit(cfg, panel, CPU, ckpt, "fp", progress=False)
    assert resumed["resumed_from_epoch"] == 2
    assert _without_timing(resumed["history"]) == _without_timing(unbroken["history"])
    _assert_same_weights(resumed_model, unbroken_model)


def test_a_checkpoint_of_other_params_or_a_damaged_one_is_not_resumed(tmp_path):
    cfg = _cfg(train__epochs=1, train__resume=True)
    panel = _panel(cfg)
    ckpt = tmp_path / CHECKPOINT
    fit(cfg, panel, CPU, ckpt, "old-params", progress=False)
    assert ckpt.is_file()
    _, info = fit(cfg, panel, CPU, ckpt, "new-params", progress=False)
    assert info["resumed_from_epoch"] == 0 and info["epochs"] == 1

    ckpt.write_bytes(b"not a checkpoint")
    _, info = fit(cfg, panel, CPU, ckpt, "new-params", progress=False)
    assert info["resumed_from_epoch"] == 0 and info["epochs"] == 1


# ---------------------------------------------------------------- run_train


def _write_prepared(root: Path, panel: Panel) -> Paths:
    paths = Paths(root)
    save_panel(panel, paths.prepared)
    return paths


def test_run_train_writes_the_model_metrics_and_plots_and_drops_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    # fast_cpu_math flips process-wide switches (flush denormals, mallopt); keep them off this process
    monkeypatch.setattr(train_mod, "fast_cpu_math", lambda: None)
    cfg = _cfg(train__epochs=2, train__resume=True)
    panel = _panel(cfg)
    paths = _write_prepared(tmp_path, panel)

    result = run_train(cfg.window, cfg.model, cfg.train, paths)

    assert result.device == "cpu" and result.epochs == 2 and result.resumed_from_epoch == 0
    model, extra = load_model(paths.models / "model.pt")
    assert model.args.n_features == 2 and (model.args.input_size, model.args.horizon) == (L, H)
    assert extra["columns"] == ["y", "x"] and extra["best_epoch"] == result.best_epoch
    assert _val_mse(model, panel) == pytest.approx(result.best_val_loss, abs=1e-6)
    assert {"model.pt", "scaler.json", "config.json", "meta.json"} <= {p.name for p in paths.models.iterdir()}
    metrics = pd.read_json(paths.metrics / "train.json", typ="series")
    assert metrics["epochs"] == 2 and metrics["device"] == "cpu"
    assert len(pd.read_json(paths.plots / "loss.json")) == 2
    assert (paths.plots / "loss.png").stat().st_size > 0
    assert not (paths.checkpoints / CHECKPOINT).exists()


@pytest.mark.parametrize("n_series", [1, 3])
def test_run_train_refuses_prepared_data_of_another_window(tmp_path, monkeypatch, n_series):
    monkeypatch.setattr(train_mod, "fast_cpu_math", lambda: None)
    paths = _write_prepared(tmp_path, _panel(_cfg(), n_series=n_series))
    cfg = _cfg(window__input_size=48)
    message = f"data/prepared/ was built for (input_size, horizon)={(L, H)} but params say {(48, H)}"
    with pytest.raises(TrainingError, match=re.escape(message)):
        run_train(cfg.window, cfg.model, cfg.train, paths)


def test_run_train_on_a_panel_writes_per_series_scalers_intervals_and_panel_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(train_mod, "fast_cpu_math", lambda: None)
    cfg = _cfg(train__epochs=2, train__windows_per_epoch=64)
    panel = _panel(cfg, n_series=4)
    paths = _write_prepared(tmp_path, panel)

    result = run_train(cfg.window, cfg.model, cfg.train, paths)

    model, extra = load_model(paths.models / "model.pt")
    card = ModelCard.from_extra(extra)
    assert card.id_column == SERIES_ID and card.timestamp_column == "timestamp" and card.columns == ("y", "x")
    frame = _frame(n_series=4)
    assert card.series_scalers.ids == ["s0", "s1", "s2", "s3"]
    n_train = int(panel.part_bounds("train")[0, 1])
    for i, sid in enumerate(card.series_scalers.ids):  # each series' own train rows
        y = frame.loc[frame[SERIES_ID] == sid, "y"].to_numpy()[:n_train].astype(np.float32)
        assert card.series_scalers.mean[i][0] == pytest.approx(y.mean(), rel=1e-5, abs=1e-6)
        assert card.series_scalers.std[i][0] == pytest.approx(y.std(), rel=1e-4)
    assert card.calibration.n == panel.windows("val").total and card.intervals["quantiles"]
    assert isinstance(card.calibration, Calibration)
    metrics = read_json(paths.metrics / "train.json")
    contract = {"epochs", "best_val_loss", "train_seconds", "samples_per_second", "device", "n_params"}
    assert contract <= set(metrics)
    assert (metrics["n_series"], metrics["windows_per_epoch"], metrics["sample_by"]) == (4, 64, "series")
    assert metrics["val_sampled"] is False and result.epochs == 2 and result.device == "cpu"
    meta = read_json(paths.models / "meta.json")
    assert "series_scalers" not in meta and meta["id_column"] == SERIES_ID  # the big table stays in model.pt
    assert read_json(paths.models / "scaler.json")["ids"] == ["s0", "s1", "s2", "s3"]
    assert not (paths.checkpoints / CHECKPOINT).exists()


@pytest.mark.parametrize("n_series", [1, 3])
def test_cuda_is_chosen_when_present_and_asked_for(tmp_path, monkeypatch, n_series):
    """The GPU pool trains the model: device selection reaches fit (CUDA faked here, the model
    then trains on the CPU device it is handed)."""
    seen = {}
    real_fit = train_mod.fit

    def fake_fit(cfg, panel, device, *args, **kwargs):
        seen["device"] = device
        return real_fit(cfg, panel, CPU, *args, **kwargs)

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(train_mod, "fast_cpu_math", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(train_mod, "fit", fake_fit)
    cfg = _cfg(train__device="auto", train__epochs=1)
    paths = _write_prepared(tmp_path, _panel(cfg, n_series=n_series))
    result = run_train(cfg.window, cfg.model, cfg.train, paths)
    assert seen["device"] == torch.device("cuda") and result.device == "cuda"


# ---------------------------------------------------------------- epochs and sampling


def test_auto_windows_per_epoch_is_every_window_up_to_16384_then_16384_drawn():
    auto = _cfg(train__windows_per_epoch="auto").train
    assert AUTO_WINDOWS_PER_EPOCH == 16384
    assert windows_per_epoch(auto, total=2439) is None  # every window once (one series, a small panel)
    assert windows_per_epoch(auto, total=16384) is None
    assert windows_per_epoch(auto, total=16385) == 16384  # a large panel: a fixed-size drawn epoch
    assert windows_per_epoch(_cfg(train__windows_per_epoch=100).train, total=10) == 100


@pytest.mark.parametrize("n_series", [3, 40])
def test_an_epoch_is_the_configured_number_of_windows_whatever_the_series_count(n_series):
    cfg = _cfg(train__windows_per_epoch=48, train__epochs=2)
    panel = _panel(cfg, rows=120, n_series=n_series)
    _, info = fit(cfg, panel, CPU, progress=False)
    assert info["samples"] == 2 * 48  # 48 sampled windows per epoch, for 3 or 40 series alike
    assert info["windows_per_epoch"] == 48 and info["n_series"] == n_series
    assert info["n_train_windows"] == panel.windows("train").total  # the panel's full set, for reference


@pytest.mark.parametrize("n_series", [1, 3])
def test_an_auto_epoch_of_a_small_panel_is_every_train_window_once(n_series):
    cfg = _cfg(train__epochs=2)
    panel = _panel(cfg, n_series=n_series)
    _, info = fit(cfg, panel, CPU, progress=False)
    total = panel.windows("train").total
    assert info["samples"] == 2 * total and info["windows_per_epoch"] == total
    assert info["sample_by"] == "every window"


def test_val_windows_beyond_the_cap_are_a_fixed_seeded_sample():
    cfg = _cfg()
    panel = _panel(cfg, n_series=3)
    total = panel.windows("val").total
    a, n = val_index(panel, seed=1, cap=10)
    b, _ = val_index(panel, seed=1, cap=10)
    c, _ = val_index(panel, seed=2, cap=10)
    assert n == total > 10 and len(a) == 10
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert {tuple(r) for r in a} <= {tuple(r) for r in panel.window_index("val")}


@pytest.mark.parametrize("by", ["series", "windows"])
def test_sampling_by_series_and_by_windows_both_train(by):
    cfg = _cfg(train__sample_by=by, train__epochs=1, train__windows_per_epoch=64)
    _, info = fit(cfg, _panel(cfg, rows=120, n_series=4), CPU, progress=False)
    assert info["sample_by"] == by and info["epochs"] == 1


@pytest.mark.parametrize("n_series", [1, 3])
def test_fit_returns_the_best_model_whose_val_mse_is_the_best_val_loss(n_series):
    cfg = _cfg(train__epochs=2)
    panel = _panel(cfg, n_series=n_series)
    model, info = fit(cfg, panel, CPU, progress=False)
    idx, total = val_index(panel, cfg.train.seed)
    assert len(idx) == total == info["n_val_windows"] and not info["val_sampled"]
    assert _val_mse(model, panel) == pytest.approx(info["best_val_loss"], rel=1e-6)


# ---------------------------------------------------------------- refit


@pytest.mark.parametrize("n_series", [1, 3])
def test_refit_trains_on_every_row_through_the_part_for_the_given_epochs(n_series):
    cfg = _cfg(train__epochs=3)
    panel = _panel(cfg, n_series=n_series)
    first, _ = fit(cfg, panel, CPU, progress=False)
    again, info = train_mod.refit(cfg, panel, epochs=2, device=CPU, through="test", progress=False)
    full = panel.train_through("test")
    assert (full.part_bounds("train")[:, 1] == panel.lengths).all()  # train runs to each series' end
    np.testing.assert_array_equal(full.mean, panel.mean)  # the scaled axis does not move
    assert info["epochs"] == 2 and info["n_train_windows"] == full.windows("train").total
    assert info["n_val_windows"] == 0 and info["best_epoch"] == 2  # no validation: the last epoch kept
    assert not torch.equal(first.head.weight, again.head.weight)


# ---------------------------------------------------------------- a real GPU, where there is one


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_on_cuda_trains_and_hands_back_a_cpu_model():
    cfg = _cfg(train__device="cuda", train__epochs=2)
    panel = _panel(cfg)
    device = select_device(cfg.train.device)
    model, info = fit(cfg, panel, device, progress=False)
    assert next(model.parameters()).device.type == "cpu"
    assert all(math.isfinite(h["val_loss"]) for h in info["history"])
    assert _val_mse(model, panel) == pytest.approx(info["best_val_loss"], rel=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_of_a_panel_on_cuda_trains_and_hands_back_a_cpu_model():
    cfg = _cfg(train__device="cuda", train__windows_per_epoch=256)
    panel = _panel(cfg, n_series=5)
    model, info = fit(cfg, panel, torch.device("cuda"), progress=False)
    assert next(model.parameters()).device.type == "cpu"
    assert _val_mse(model, panel) == pytest.approx(info["best_val_loss"], rel=1e-2)
