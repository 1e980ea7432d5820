"""Training faults: a SIGKILL mid-training resumes to the same result; a NaN/inf loss stops cleanly.

The kill tests share one scenario (``killed_then_resumed``, built once for the module): in
one copy of the pipeline ``dvc repro evaluate`` runs unbroken; in another the same command's
``tsforecast train`` process is SIGKILLed after epoch 1's checkpoint (train's test hook
``TSFORECAST_TEST_PAUSE_AFTER_EPOCH`` holds it there), then ``dvc repro evaluate`` runs
again. The tests check what the kill left and that the resumed run ends where the unbroken
one did: same epochs, same metrics, same weights (CPU, same seed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

from tests.reliability.conftest import (
    BIN,
    GUARDED,
    Repo,
    Run,
    assert_user_error,
    stage_env,
    survivors,
)
from tsforecast.config import load_config
from tsforecast.errors import TrainingError
from tsforecast.paths import Paths
from tsforecast.training.model import LSTMForecaster, load_model
from tsforecast.training.train import PAUSE_ENV, run_train

# more, smaller batches than the shared repo, dropout on (so RNG state matters), no early stop
LONGER_TRAINING = {
    "train.epochs": 3,
    "train.batch_size": 4,
    "train.patience": 10,
    "model.hidden_size": 16,
    "model.num_layers": 2,
    "model.dropout": 0.1,
}
KILL_IN_EPOCH = 2  # killed after epoch 1's checkpoint, before epoch 2 is done
CHECKPOINT = ".checkpoints/train.pt"
PAUSED = CHECKPOINT + ".paused"  # the marker train's test hook creates while it waits
TIMING_KEYS = {"train_seconds", "samples_per_second", "resumed_from_epoch", "seconds"}


def copy_of(good_repo: Path, dest: Path) -> Repo:
    shutil.copytree(good_repo, dest, symlinks=False, ignore=shutil.ignore_patterns("tmp"))
    return Repo(dest)


def checkpoint_epoch(repo: Repo) -> int | None:
    path = repo.root / CHECKPOINT
    if not path.is_file():
        return None
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def train_processes(parent: int) -> list[psutil.Process]:
    """The ``tsforecast train`` processes below ``parent`` (DVC runs the stage through a shell)."""
    found = []
    for p in psutil.Process(parent).children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if any(part.endswith("tsforecast") for part in cmd) and "train" in cmd:
            found.append(p)
    return found


def kill_train_in_epoch(repo: Repo, epoch: int, timeout: float = 240) -> Run:
    """Run ``dvc repro evaluate``; SIGKILL its train process once ``epoch - 1``'s checkpoint is
    written (train pauses there: ``PAUSE_ENV``), so ``epoch`` never finishes."""
    out, err = repo.root / ".repro.out", repo.root / ".repro.err"
    env = {**stage_env(), PAUSE_ENV: str(epoch - 1)}
    with open(out, "w") as fo, open(err, "w") as fe:
        dvc = subprocess.Popen(
            [str(BIN / "dvc"), "repro", "evaluate"], cwd=repo.root, env=env, stdout=fo, stderr=fe
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert dvc.poll() is None, f"dvc repro ended before the kill:\n{err.read_text()}"
                assert time.monotonic() < deadline, f"train never paused after epoch {epoch - 1}"
                if (repo.root / PAUSED).exists():
                    victims = train_processes(dvc.pid)
                    assert victims, "no tsforecast train process under dvc"
                    for victim in victims:
                        victim.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.02)
            dvc.wait(timeout=60)
        finally:
            if dvc.poll() is None:
                dvc.kill()
    assert not survivors(repo.root), "a stage process outlived the kill"
    (repo.root / PAUSED).unlink()  # tidy: the hook's marker is no output of the pipeline
    return Run(["dvc", "repro", "evaluate"], dvc.returncode, out.read_text(), err.read_text())


def weights(repo: Repo) -> dict[str, torch.Tensor]:
    model, _ = load_model(repo.root / "models" / "model.pt")
    return model.state_dict()


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def read(repo: Repo, rel: str) -> Any:
    return json.loads((repo.root / rel).read_text())


@dataclass
class KillScenario:
    unbroken: Repo
    killed: Repo
    before: dict[str, str]  # digest of the killed copy's guarded outputs before the kill
    kill_run: Run
    after_kill: dict[str, str]
    checkpoint_after_kill: int | None
    status_after_kill: dict[str, Any]
    resume_run: Run
    status_after_resume: dict[str, Any]


@pytest.fixture(scope="module", params=[1, 2], ids=["unsharded", "2-shards"])
def killed_then_resumed(
    good_repo: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> KillScenario:
    """The scenario with the plain step (global RNG) and with the sharded CPU step (per-shard
    dropout generators re-seeded each epoch): both must resume to the unbroken result."""
    params = {**LONGER_TRAINING, "train.cpu_shards": request.param}
    base = tmp_path_factory.mktemp("kill")
    unbroken = copy_of(good_repo, base / "unbroken")
    unbroken.set_params(**params)
    reference = unbroken.dvc("repro", "evaluate")
    assert reference.returncode == 0, reference

    killed = copy_of(good_repo, base / "killed")
    killed.set_params(**params)
    before = killed.digest()
    kill_run = kill_train_in_epoch(killed, KILL_IN_EPOCH)
    after_kill = killed.digest()
    checkpoint_after_kill = checkpoint_epoch(killed)
    status_after_kill = killed.dvc_status()
    resume_run = killed.dvc("repro", "evaluate")
    return KillScenario(
        unbroken,
        killed,
        before,
        kill_run,
        after_kill,
        checkpoint_after_kill,
        status_after_kill,
        resume_run,
        killed.dvc_status(),
    )


@pytest.mark.slow
def test_sigkill_mid_training_fails_the_repro_and_keeps_the_previous_outputs(
    killed_then_resumed: KillScenario,
) -> None:
    s = killed_then_resumed
    assert s.kill_run.returncode != 0, s.kill_run
    assert "failed to reproduce 'train'" in s.kill_run.stderr, s.kill_run
    assert "Running stage 'evaluate'" not in s.kill_run.stdout
    assert s.after_kill == s.before, "the killed train stage changed the previous outputs"
    leftovers = [p.name for p in s.killed.root.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not leftovers, "the kill came mid-training, before any output was written"


@pytest.mark.slow
def test_sigkill_mid_training_leaves_the_checkpoint_of_the_last_finished_epoch(
    killed_then_resumed: KillScenario,
) -> None:
    assert killed_then_resumed.checkpoint_after_kill == KILL_IN_EPOCH - 1


@pytest.mark.slow
def test_dvc_status_reports_train_out_of_date_after_the_kill(killed_then_resumed: KillScenario) -> None:
    status = killed_then_resumed.status_after_kill
    # evaluate reads models/, which the kill left as it was: only train is out of date
    assert list(status) == ["train"], status
    assert "params.yaml" in status["train"][0]["changed deps"], status


@pytest.mark.slow
def test_next_repro_resumes_from_the_checkpoint_and_completes(killed_then_resumed: KillScenario) -> None:
    s = killed_then_resumed
    assert s.resume_run.returncode == 0, s.resume_run
    assert f"resuming from checkpoint after epoch {KILL_IN_EPOCH - 1}" in s.resume_run.stderr
    assert read(s.killed, "metrics/train.json")["resumed_from_epoch"] == KILL_IN_EPOCH - 1
    assert not (s.killed.root / CHECKPOINT).exists(), "a finished run drops its checkpoint"
    assert s.status_after_resume == {}, s.status_after_resume


@pytest.mark.slow
def test_resumed_training_ends_with_the_epochs_and_metrics_of_an_unbroken_run(
    killed_then_resumed: KillScenario,
) -> None:
    s = killed_then_resumed
    resumed, unbroken = read(s.killed, "metrics/train.json"), read(s.unbroken, "metrics/train.json")
    assert resumed["epochs"] == unbroken["epochs"] == LONGER_TRAINING["train.epochs"]
    assert resumed["best_val_loss"] == unbroken["best_val_loss"]
    assert without_timing(resumed) == without_timing(unbroken)
    assert without_timing(read(s.killed, "plots/loss.json")) == without_timing(
        read(s.unbroken, "plots/loss.json")
    )
    assert read(s.killed, "metrics/evaluate.json") == read(s.unbroken, "metrics/evaluate.json")


@pytest.mark.slow
def test_resumed_training_ends_with_the_weights_of_an_unbroken_run(killed_then_resumed: KillScenario) -> None:
    resumed, unbroken = weights(killed_then_resumed.killed), weights(killed_then_resumed.unbroken)
    assert resumed.keys() == unbroken.keys()
    different = [k for k in resumed if not torch.equal(resumed[k], unbroken[k])]
    assert not different, f"weights differ from the unbroken run's: {different}"


# --------------------------------------------------------------------------- NaN / inf loss


@pytest.mark.slow
def test_diverging_loss_stops_dvc_repro_at_train_naming_the_epoch(repo: Repo) -> None:
    """A learning rate of 1e30 without clipping: the loss overflows in the first epoch (inf under
    train.loss mse, nan under the default mae: both stop the run with the same line)."""
    repo.set_params(**{"train.lr": 1e30, "train.grad_clip": 0.0, "train.loss": "mse"})
    before = repo.digest((*GUARDED, "plots"))

    run = repo.dvc("repro")  # the whole pipeline, register included

    assert_user_error(run, "train loss is inf at epoch 1, batch ", "lower train.lr (now 1e+30)")
    assert "failed to reproduce 'train'" in run.stderr
    assert "Running stage 'evaluate'" not in run.stdout
    assert "Running stage 'register'" not in run.stdout, "nothing may be registered"
    assert not (repo.root / "reports" / "registered.json").exists()
    assert repo.digest((*GUARDED, "plots")) == before
    assert "train" in repo.dvc_status()


def test_nan_loss_in_a_later_epoch_names_that_epoch_and_writes_nothing(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model turns to NaN in its 12th training step: batch 1 of epoch 2 (11 steps an epoch)."""
    forward = LSTMForecaster.forward
    steps = {"n": 0}

    def poisoned(self: LSTMForecaster, x: torch.Tensor) -> torch.Tensor:
        y = forward(self, x)
        if self.training:
            steps["n"] += 1
            if steps["n"] > 11:
                return y * math.nan
        return y

    monkeypatch.setattr(LSTMForecaster, "forward", poisoned)
    cfg = load_config(repo.root / "params.yaml")
    before = repo.digest((*GUARDED, "plots"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one thread is far faster (see conftest)
    try:
        with pytest.raises(TrainingError) as err:
            run_train(cfg.window, cfg.model, cfg.train, Paths.from_root(repo.root))
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)  # run_train turned it on for this process

    assert str(err.value).startswith("train loss is nan at epoch 2, batch 1/11; training stopped")
    assert repo.digest((*GUARDED, "plots")) == before
    assert os.path.exists(repo.root / CHECKPOINT), "epoch 1's checkpoint stays for a resume"
