"""Fixtures for the data stages: small real series written the way ``ingest`` writes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.repos import Repo, ingested_repo


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Repo]:
    """``make_repo(frame, suffix=".csv", **data)``: :func:`tests.helpers.repos.ingested_repo` in a tmp dir."""

    def make(frame: pd.DataFrame, suffix: str = ".csv", **data: Any) -> Repo:
        return ingested_repo(tmp_path, frame, suffix, **data)

    return make
