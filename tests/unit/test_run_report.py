"""The Prefect run report: what it says about the registry when the register stage did or did not run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.dvc_runner import CommandResult, stage_ran
from pipelines.run_report import build_report, mlflow_runs_link

STAGES = ["ingest", "validate", "window", "train", "evaluate", "register"]


def registered(**overrides: Any) -> dict[str, Any]:
    return {
        "model_name": "tsforecast-lstm",
        "version": 4,
        "aliases": ["champion"],
        "champion": True,
        "reason": "champion: v4: test mse_scaled 0.0125 beats champion v3's 0.013",
        "run_id": "abc123",
        "experiment_id": "7",
        "tracking_uri": "http://127.0.0.1:5000",
        "champion_version": 4,
        **overrides,
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "registered.json").write_text(json.dumps(registered()))
    return tmp_path


def test_a_run_in_which_nothing_ran_does_not_claim_a_promotion(repo: Path) -> None:
    md = build_report(repo, STAGES, ran=[])

    assert "promoted" not in md
    assert "Ran: none (every stage was up to date)" in md
    assert "- no stage ran; the registry is unchanged (v4 remains champion)" in md
    assert "last registered by an earlier run: `tsforecast-lstm` version 4" in md


def test_a_run_that_stopped_before_register_says_the_registry_is_unchanged(repo: Path) -> None:
    md = build_report(repo, STAGES, failed="stage 'train' failed", ran=["ingest", "validate"])

    assert "promoted" not in md
    assert "- the register stage did not run; the registry is unchanged (v4 remains champion)" in md


def test_no_champion_at_all_is_said_plainly(repo: Path) -> None:
    (repo / "reports" / "registered.json").write_text(
        json.dumps(registered(champion=False, aliases=["challenger"], champion_version=None))
    )

    md = build_report(repo, STAGES, ran=[])

    assert "the registry is unchanged (no version holds the champion alias)" in md


def test_a_run_that_registered_reports_the_gates_verdict(repo: Path) -> None:
    md = build_report(repo, STAGES, ran=["train", "evaluate", "register"])

    assert "Ran: train, evaluate, register" in md
    assert "- `tsforecast-lstm` version **4**, aliases: `@champion`" in md
    assert (
        "- gate: promoted to champion (champion: v4: test mse_scaled 0.0125 beats champion v3's 0.013)" in md
    )
    assert "registry is unchanged" not in md


def test_the_mlflow_links_open_the_run_and_the_experiments_runs_table(repo: Path) -> None:
    md = build_report(repo, STAGES, ran=["register"])

    assert "[abc123](http://127.0.0.1:5000/#/experiments/7/runs/abc123)" in md
    assert "[all runs of the experiment](http://127.0.0.1:5000/#/experiments/7/runs)" in md
    assert mlflow_runs_link(registered(tracking_uri="sqlite:///x.db")) is None


def test_stage_ran_reads_dvcs_own_words() -> None:
    ran = CommandResult(args=[], returncode=0, stdout=["Running stage 'train':", "> tsforecast train"])
    skipped = CommandResult(args=[], returncode=0, stdout=["Stage 'train' didn't change, skipping"])

    assert stage_ran(ran, "train") is True
    assert stage_ran(skipped, "train") is False
    assert stage_ran(ran, "evaluate") is False
