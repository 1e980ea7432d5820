"""checkpoint.py and the loop's test hook: the training state's bookkeeping, a checkpoint
that restores all of it or nothing, and the pause the kill tests rely on."""

from __future__ import annotations

import logging
import math
import threading
import time

import torch
from torch import nn

from tsforecast.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from tsforecast.training.train import PAUSE_ENV, pause_for_tests


def _record(epoch: int, val_loss: float, seconds: float = 1.5) -> dict[str, float]:
    return {"epoch": epoch, "train_loss": 1.0, "val_loss": val_loss, "lr": 0.01, "seconds": seconds}


def _weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- TrainState


def test_a_better_epoch_becomes_the_best_and_its_weights_are_copied():
    model = nn.Linear(3, 2)
    state = TrainState().after_epoch(_record(1, 0.5), samples=10, model=model)
    assert (state.epoch, state.best_epoch, state.best_val, state.bad_epochs) == (1, 1, 0.5, 0)
    assert state.improved
    kept = _weights_of(model)
    with torch.no_grad():
        model.weight.add_(1.0)  # training goes on: the kept weights must not follow
    assert state.best_weights is not None and _same(state.best_weights, kept)


def test_worse_or_barely_better_epochs_count_towards_patience_and_keep_the_best():
    model = nn.Linear(3, 2)
    first = TrainState().after_epoch(_record(1, 0.5), samples=10, model=model)
    second = first.after_epoch(_record(2, 0.6), samples=10, model=model)
    third = second.after_epoch(_record(3, 0.5 - 1e-8), samples=10, model=model)  # not 1e-7 better
    assert (third.best_epoch, third.best_val, third.bad_epochs) == (1, 0.5, 2)
    assert not second.improved and not third.improved
    assert third.best_weights is first.best_weights
    assert third.should_stop(2) and not third.should_stop(3)
    assert not first.should_stop(1)


def test_after_epoch_returns_a_new_state_with_history_time_and_samples_added():
    model = nn.Linear(3, 2)
    first = TrainState().after_epoch(_record(1, 0.5, seconds=1.5), samples=10, model=model)
    second = first.after_epoch(_record(2, 0.4, seconds=2.0), samples=7, model=model)
    assert first.epoch == 1 and len(first.history) == 1  # the earlier state is unchanged
    assert second.history == (_record(1, 0.5, 1.5), _record(2, 0.4, 2.0))
    assert (second.train_time, second.samples, second.best_epoch) == (3.5, 17, 2)


def test_a_fresh_state_starts_before_epoch_one_with_no_best():
    state = TrainState()
    assert (state.epoch, state.best_val, state.best_weights, state.history) == (0, math.inf, None, ())
    assert not state.improved and not state.should_stop(1)


# ---------------------------------------------------------------- save_checkpoint / load_checkpoint


def _live(model: nn.Module, generator: torch.Generator) -> dict:
    return {
        "model": (model.state_dict, model.load_state_dict),
        "generator": (generator.get_state, generator.set_state),
    }


def test_a_checkpoint_restores_the_state_and_every_live_object(tmp_path):
    torch.manual_seed(0)
    model, gen = nn.Linear(3, 2), torch.Generator().manual_seed(5)
    torch.randperm(10, generator=gen)  # a generator part-way through its stream
    state = TrainState().after_epoch(_record(1, 0.5), 10, model).after_epoch(_record(2, 0.7), 10, model)
    save_checkpoint(tmp_path / "c.pt", "fp", state, _live(model, gen))
    expected_next = torch.randperm(10, generator=gen)

    other, other_gen = nn.Linear(3, 2), torch.Generator().manual_seed(99)
    loaded = load_checkpoint(tmp_path / "c.pt", "fp", _live(other, other_gen))

    assert loaded is not None
    assert (loaded.epoch, loaded.best_epoch, loaded.best_val, loaded.bad_epochs) == (2, 1, 0.5, 1)
    assert loaded.history == state.history and loaded.samples == 20
    assert loaded.best_weights is not None and state.best_weights is not None
    assert _same(loaded.best_weights, state.best_weights)
    assert _same(other.state_dict(), model.state_dict())
    assert torch.equal(torch.randperm(10, generator=other_gen), expected_next)


def test_a_checkpoint_of_other_params_restores_nothing(tmp_path, caplog):
    model, gen = nn.Linear(3, 2), torch.Generator()
    save_checkpoint(
        tmp_path / "c.pt", "old", TrainState().after_epoch(_record(1, 0.5), 1, model), _live(model, gen)
    )
    other = nn.Linear(3, 2)
    before = _weights_of(other)
    with caplog.at_level(logging.INFO, logger="tsforecast.training.checkpoint"):
        assert load_checkpoint(tmp_path / "c.pt", "new", _live(other, gen)) is None
    assert _same(other.state_dict(), before)
    assert "is from other params or data; starting afresh" in caplog.text


def test_a_checkpoint_of_another_layout_restores_nothing_and_says_so(tmp_path, caplog):
    """An older checkpoint (other keys) with the right fingerprint: no half-restored model."""
    torch.save({"fingerprint": "fp", "epoch": 1, "model": nn.Linear(3, 2).state_dict()}, tmp_path / "c.pt")
    other = nn.Linear(3, 2)
    before = _weights_of(other)
    with caplog.at_level(logging.WARNING, logger="tsforecast.training.checkpoint"):
        assert load_checkpoint(tmp_path / "c.pt", "fp", _live(other, torch.Generator())) is None
    assert _same(other.state_dict(), before)
    assert "of another layout (KeyError" in caplog.text


def test_a_damaged_or_missing_checkpoint_is_ignored(tmp_path, caplog):
    live = _live(nn.Linear(3, 2), torch.Generator())
    assert load_checkpoint(tmp_path / "none.pt", "fp", live) is None
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="tsforecast.training.checkpoint"):
        assert load_checkpoint(tmp_path / "bad.pt", "fp", live) is None
    assert "ignoring unreadable checkpoint" in caplog.text


# ---------------------------------------------------------------- the kill tests' pause hook


def test_without_the_test_hook_training_never_pauses(tmp_path, monkeypatch):
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    pause_for_tests(1, tmp_path / "train.pt")
    monkeypatch.setenv(PAUSE_ENV, "2")
    pause_for_tests(1, tmp_path / "train.pt")  # another epoch: no pause either
    assert list(tmp_path.iterdir()) == []


def test_the_test_hook_pauses_after_its_epoch_until_the_marker_is_removed(tmp_path, monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "2")
    marker = tmp_path / "train.pt.paused"
    paused = threading.Thread(target=pause_for_tests, args=(2, tmp_path / "train.pt"), daemon=True)
    paused.start()
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, "the hook never created its marker"
        time.sleep(0.01)
    time.sleep(0.2)
    assert paused.is_alive(), "the hook returned while its marker still exists"
    marker.unlink()
    paused.join(timeout=5)
    assert not paused.is_alive()
