"""Fixtures for the validate stage: small real series written the way ``ingest`` writes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tsforecast.config import Config, config_from_dict
from tsforecast.data.ingest import run_ingest
from tsforecast.paths import Paths


@dataclass(frozen=True)
class Repo:
    cfg: Config
    paths: Paths


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Repo]:
    """Write ``frame`` as ``series.csv`` (or .parquet) in a tmp repo and run ``ingest`` on it.

    Keyword arguments override keys of the ``data`` section. The split and window are small
    (fractions 0.6/0.2/0.2, input_size 4, horizon 2: 30 rows at least).
    """

    def make(frame: pd.DataFrame, suffix: str = ".csv", **data: Any) -> Repo:
        (tmp_path / "params.yaml").write_text("")
        source = tmp_path / f"series{suffix}"
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
        paths = Paths.from_root(tmp_path)
        run_ingest(cfg.data, paths)
        return Repo(cfg, paths)

    return make
