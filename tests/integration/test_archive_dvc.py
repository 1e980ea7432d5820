"""The archive of delivered forecasts in a real DVC checkout: every `dvc repro` of the forecast stage
adds to it, and neither `dvc repro`, `dvc checkout` nor `make clean` removes or changes a file."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.integration.conftest import REPO, BuiltRepo, dvc_at

pytestmark = pytest.mark.slow


def _archive(root: Path) -> dict[str, str]:
    folder = root / "forecasts" / "archive"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_dvc_repro_archives_the_forecast_and_dvc_never_touches_the_archive(
    built_repo: BuiltRepo, repo_copy: Path
) -> None:
    first = _archive(built_repo.root)
    assert len(first) == 1, "the pipeline's forecast stage archived its delivery"
    [name] = first
    frame = pd.read_parquet(repo_copy / "forecasts" / "archive" / name)
    delivered = pd.read_parquet(repo_copy / "forecasts" / "forecast.parquet")
    assert frame[list(delivered.columns)].equals(delivered)
    assert {"origin", "model_version", "train_std"} <= set(frame.columns)

    dvc_at(repo_copy, "checkout", "--force")
    assert _archive(repo_copy) == first

    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["forecast"]["levels"] = [50, 80]  # another delivery from the same origin
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_at(repo_copy, "repro", "forecast")
    after = _archive(repo_copy)
    assert len(after) == 2 and {k: after[k] for k in first} == first, "kept, unchanged, one more"

    dvc_at(repo_copy, "repro", "--force", "--single-item", "forecast")  # the same delivery again: nothing new
    assert _archive(repo_copy) == after
    dvc_at(repo_copy, "checkout", "--force")
    assert _archive(repo_copy) == after


def test_make_clean_keeps_the_archive_and_the_decision_log(repo_copy: Path) -> None:
    shutil.copy2(REPO / "Makefile", repo_copy / "Makefile")
    (repo_copy / "forecasts" / "decisions").mkdir(parents=True, exist_ok=True)
    (repo_copy / "forecasts" / "decisions" / "x__decision__y.json").write_text("{}")
    before = _archive(repo_copy)

    out = subprocess.run(["make", "clean"], cwd=repo_copy, capture_output=True, text=True, check=True).stdout

    assert "forecasts/archive/" in out
    assert not (repo_copy / "forecasts" / "forecast.parquet").exists() and not (repo_copy / "models").exists()
    assert _archive(repo_copy) == before and before
    assert (repo_copy / "forecasts" / "decisions" / "x__decision__y.json").is_file()
