"""A stage killed at any point leaves the previous outputs and a consistent ``dvc repro``.

Two mechanisms make that hold, and each is tested: DVC keeps a stage's outputs when it starts
the stage only if they are ``persist: true`` (dvc.yaml), and every stage writes into a temp
dir beside its output and swaps it in with two renames (``tsforecast.io.atomic_dir``); a
swap cut between the renames is undone by ``recover_dir`` on the stage's next run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import yaml

from tests.reliability.conftest import (
    BIN,
    GUARDED,
    MAIN,
    Repo,
    stage_env,
    survivors,
    tree_digest,
)
from tsforecast.io import atomic_dir, atomic_file, recover_dir
from tsforecast.training.train import PAUSE_ENV

# --------------------------------------------------------------------------- dvc.yaml


def test_every_stage_output_in_dvc_yaml_is_persistent() -> None:
    """Without ``persist: true`` DVC deletes an output before running its stage's command."""
    stages = yaml.safe_load((MAIN / "dvc.yaml").read_text())["stages"]
    not_persistent = []
    for name, stage in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                if not (opts or {}).get("persist"):
                    not_persistent.append(f"{name}: {path}")
    assert not not_persistent, f"outputs DVC would delete before their stage runs: {not_persistent}"


# --------------------------------------------------------------------------- atomic_dir


def fill(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text(text)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "b.txt").write_text(text * 2)


def siblings(target: Path) -> list[str]:
    """The temp and old dirs of ``target``'s swaps (``.name.tmp-*``, ``.name.old-*``), and strays."""
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def test_atomic_dir_keeps_the_old_contents_when_the_stage_fails(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    fill(target, "old")
    before = tree_digest(tmp_path, ["prepared"])

    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        fill(tmp, "new, half written")
        raise RuntimeError("the stage failed")

    assert tree_digest(tmp_path, ["prepared"]) == before
    assert siblings(target) == [], "the temp dir of a failed stage is removed"


def test_atomic_file_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "train.json"
    target.write_text('{"old": true}')

    with pytest.raises(RuntimeError), atomic_file(target) as fh:
        fh.write('{"new"')
        raise RuntimeError("killed mid-write")

    assert target.read_text() == '{"old": true}'
    assert siblings(target) == []


def test_recover_dir_restores_the_output_of_a_swap_cut_between_its_renames(tmp_path: Path) -> None:
    """The first rename moved the output aside, the second never ran: the state a kill leaves."""
    target = tmp_path / "models"
    fill(tmp_path / ".models.old-4242", "old")
    fill(tmp_path / ".models.tmp-abc123", "new")
    expected = tree_digest(tmp_path / ".models.old-4242", ["."])

    recover_dir(target)

    assert tree_digest(target, ["."]) == expected
    assert siblings(target) == [], "the half-swapped temp dir is dropped"


def test_recover_dir_drops_stale_temp_dirs_and_keeps_a_complete_output(tmp_path: Path) -> None:
    target = tmp_path / "models"
    fill(target, "current")
    before = tree_digest(tmp_path, ["models"])
    fill(tmp_path / ".models.tmp-abc123", "killed while writing")
    fill(tmp_path / ".models.old-4242", "killed before removing the old copy")

    recover_dir(target)

    assert tree_digest(tmp_path, ["models"]) == before
    assert siblings(target) == []


def test_next_atomic_dir_after_a_cut_swap_replaces_the_restored_output_whole(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    fill(tmp_path / ".prepared.old-4242", "old")
    fill(tmp_path / ".prepared.tmp-abc123", "half")

    with atomic_dir(target) as tmp:
        assert (target / "a.txt").read_text() == "old", "the old output is back while the stage runs"
        fill(tmp, "new")

    assert (target / "a.txt").read_text() == "new"
    assert (target / "sub" / "b.txt").read_text() == "newnew"
    assert siblings(target) == []


# --------------------------------------------------------------------------- a real SIGKILL mid-swap

# Runs `tsforecast window` with os.replace wrapped: at ``point`` of the data/prepared swap it
# writes ``marker`` and sleeps, so the test can SIGKILL it exactly there.
PAUSING_WINDOW = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    point, marker = sys.argv[1], Path(sys.argv[2])
    real_replace = os.replace

    def pause():
        marker.write_text(str(os.getpid()))
        time.sleep(600)

    def replace(src, dst):
        first = Path(dst).name.startswith(".prepared.old-")  # output moved aside
        second = Path(src).name.startswith(".prepared.tmp-") and Path(dst).name == "prepared"
        if point == "before_the_swap" and first:
            pause()
        real_replace(src, dst)
        if (point == "between_the_renames" and first) or (point == "after_the_swap" and second):
            pause()

    os.replace = replace
    from tsforecast.cli import main

    sys.exit(main(["window"]))
    """
)


def kill_window_at(repo: Repo, point: str, timeout: float = 120) -> None:
    marker, log = repo.root.parent / f"paused-{point}", repo.root.parent / f"window-{point}.err"
    with open(log, "w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", PAUSING_WINDOW, point, str(marker)],
            cwd=repo.root,
            env=stage_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            assert child.poll() is None, f"window ended before {point}: {log.read_text()}"
            assert time.monotonic() < deadline, f"window never reached {point}"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_the_swap", "between_the_renames", "after_the_swap"])
def test_window_killed_at_any_point_of_its_swap_leaves_a_consistent_repro(repo: Repo, point: str) -> None:
    before = repo.digest()
    prepared = repo.root / "data" / "prepared"

    kill_window_at(repo, point)

    stale = siblings(prepared)
    if point == "between_the_renames":  # the output is aside, whole, under its .old name
        assert not prepared.exists()
        (old,) = [n for n in stale if n.startswith(".prepared.old-")]
        previous = {k.removeprefix("data/prepared/"): v for k, v in before.items() if "prepared/" in k}
        assert tree_digest(prepared.parent / old, ["."]) == previous
    else:  # same params, so the new output equals the old byte for byte
        assert repo.digest() == before
    assert any(n.startswith((".prepared.tmp-", ".prepared.old-")) for n in stale), stale

    run = repo.dvc("repro", "evaluate")

    assert run.returncode == 0, run
    assert repo.digest() == before, "the next repro ends with the previous outputs"
    assert repo.dvc_status() == {}
    if point == "between_the_renames":  # DVC saw data/prepared missing and re-ran window
        assert "Running stage 'window'" in run.stdout, run
        assert siblings(prepared) == [], "the re-run recovered the old dir and dropped the temp one"
    assert "Running stage 'train'" not in run.stdout, "window re-made the same data: train stays"


# --------------------------------------------------------------------------- killing dvc repro itself


def wait_for(
    reached: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float = 240
) -> None:
    deadline = time.monotonic() + timeout
    while not reached():
        assert proc.poll() is None, f"dvc repro ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def train_started(dvc_pid: int) -> bool:
    for p in psutil.Process(dvc_pid).children(recursive=True):
        try:
            if "train" in p.cmdline() and any(c.endswith("tsforecast") for c in p.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


@pytest.mark.slow
def test_sigkill_of_the_whole_dvc_repro_during_train_keeps_outputs_and_the_next_repro_completes(
    repo: Repo,
) -> None:
    """Kill DVC and its stage together (a closed terminal, an OOM kill) at two moments of train:
    while it imports, and mid-training (held after epoch 1's checkpoint by train's test hook).
    DVC's stale lock must not block the next run."""
    repo.set_params(**{"train.seed": 7, "train.batch_size": 4, "train.epochs": 3})
    before = repo.digest((*GUARDED, "plots"))
    err = repo.root.parent / "repro.err"
    moments = {
        "while train imports": lambda pid: train_started(pid),
        "mid-training": lambda pid: (repo.root / ".checkpoints" / "train.pt.paused").exists(),
    }
    for moment, reached in moments.items():
        with open(err, "w") as fe:
            proc = subprocess.Popen(
                [str(BIN / "dvc"), "repro", "evaluate"],
                cwd=repo.root,
                env={**stage_env(), PAUSE_ENV: "1"},
                stdout=subprocess.DEVNULL,
                stderr=fe,
                start_new_session=True,
            )
            try:
                wait_for(lambda proc=proc, reached=reached: reached(proc.pid), moment, proc)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
        assert not survivors(repo.root), f"killed {moment}: a stage process outlived the kill"
        assert repo.digest((*GUARDED, "plots")) == before, f"killed {moment}: the outputs changed"
        assert list(repo.dvc_status()) == ["train"], f"killed {moment}: train must stay out of date"

    run = repo.dvc("repro", "evaluate")

    assert run.returncode == 0, run
    assert "resuming from checkpoint after epoch 1" in run.stderr, run
    assert repo.dvc_status() == {}
    assert repo.digest(["models"]) != {k: v for k, v in before.items() if k.startswith("models/")}
