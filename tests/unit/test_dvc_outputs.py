"""dvc.yaml and git agree on which outputs a fresh clone sees (metrics and plot data in git)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
IN_GIT = ("metrics/", "plots/", "reports/validation.json")  # small JSON a clone must show


def stage_outputs() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(stage, kind, path, options) of every output of every stage."""
    out = []
    for name, stage in DVC_YAML["stages"].items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                out.append((name, kind, str(path), opts or {}))
    return out


def small_json() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [o for o in stage_outputs() if o[2].endswith(".json") and o[2].startswith(IN_GIT)]


def test_metrics_and_plot_json_are_tracked_by_git_not_the_dvc_cache() -> None:
    found = small_json()
    paths = {p for _, _, p, _ in found}
    assert {"metrics/evaluate.json", "metrics/train.json", "reports/validation.json"} <= paths
    assert {"plots/loss.json", "plots/forecast.json", "plots/error_by_step.json"} <= paths
    cached = [f"{s}: {p}" for s, _, p, o in found if o.get("cache", True)]
    assert not cached, f"DVC-cached, so a fresh clone cannot show them: {cached}; set cache: false"


def test_pngs_stay_in_the_dvc_cache() -> None:
    pngs = [(s, p, o) for s, _, p, o in stage_outputs() if p.endswith(".png")]
    assert pngs
    assert all(o.get("cache", True) for _, _, o in pngs), pngs


def test_no_plot_is_drawn_twice() -> None:
    """A file under a stage's ``plots:`` and again in the top-level ``plots:`` is drawn twice."""
    stage_plots = {p for _, kind, p, _ in stage_outputs() if kind == "plots"}
    top: list[str] = []
    for entry in DVC_YAML.get("plots") or []:
        if isinstance(entry, str):
            top.append(entry)
            continue
        (_, spec), *_ = entry.items()
        y = (spec or {}).get("y")
        top.extend(y if isinstance(y, dict) else [])
    twice = sorted(stage_plots & set(top))
    assert not twice, f"drawn twice by `dvc plots show/diff`: {twice}"
    assert len(top) == len(set(top)), top


@pytest.mark.parametrize("rel", [p for _, _, p, _ in small_json()])
def test_committed_metrics_and_plot_json_are_not_git_ignored(rel: str) -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO, check=False)
    assert ignored.returncode == 1, f"{rel} is git-ignored; a fresh clone would not see it"


def test_dvc_plots_output_folder_is_git_ignored() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "dvc_plots/index.html"], cwd=REPO, check=False)
    assert ignored.returncode == 0, "dvc_plots/ (written by `dvc plots show/diff`) should be git-ignored"
