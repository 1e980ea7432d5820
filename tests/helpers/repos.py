"""Tmp repos for the data tests: a series file ingested the way ``tsforecast ingest`` does it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tsforecast.config import Config, config_from_dict
from tsforecast.data.ingest import run_ingest
from tsforecast.data.validate import ValidateResult, run_validate
from tsforecast.errors import DataValidationError
from tsforecast.io import read_json
from tsforecast.paths import Paths


@dataclass(frozen=True)
class Repo:
    cfg: Config
    paths: Paths


def ingested_repo(root: Path, frame: pd.DataFrame, suffix: str = ".csv", **data: Any) -> Repo:
    """Write ``frame`` as ``series.csv`` (or .parquet) in ``root`` and run ``ingest`` on it.

    Keyword arguments override keys of the ``data`` section. The split and window are small
    (fractions 0.6/0.2/0.2, input_size 4, horizon 2: 30 rows at least).
    """
    (root / "params.yaml").write_text("")
    source = root / f"series{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_parquet(source, index=False)
    cfg = config_from_dict(
        {
            "data": {"path": source.name, "target": "y", **data},
            "split": {"train": 0.6, "val": 0.2, "test": 0.2},
            "window": {"input_size": 4, "horizon": 2},
            "evaluate": {"seasonal_period": 2},
        }
    )
    paths = Paths.from_root(root)
    run_ingest(cfg.data, paths)
    return Repo(cfg, paths)


def validate(repo: Repo) -> ValidateResult:
    """Run the validate stage on ``repo``."""
    c = repo.cfg
    return run_validate(c.data, c.split, c.window, c.orchestration, repo.paths)


def failure(repo: Repo) -> str:
    """The message of the DataValidationError that validating ``repo`` raises."""
    with pytest.raises(DataValidationError) as info:
        validate(repo)
    return str(info.value)


def report(repo: Repo) -> dict[str, Any]:
    """reports/validation.json of ``repo``."""
    return read_json(repo.paths.reports / "validation.json")


def lines_with(message: str, text: str) -> list[str]:
    """The lines of ``message`` holding ``text``."""
    return [line for line in message.splitlines() if text in line]


__all__ = ["Repo", "failure", "ingested_repo", "lines_with", "report", "validate"]
