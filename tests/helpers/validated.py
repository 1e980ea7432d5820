"""A checkout whose ``data/validated/`` is written the way the validate stage leaves it, without
running validate: for the window stage's tests (one series or a panel of them by ``sid``).

:func:`coded_frame` holds values that say where they come from: series ``i``'s row ``t`` has
``y = 1000 i + t`` and ``temp = 1000 i + 500 + t``, exact in float32, so a gathered window shows
the series and rows it read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.helpers.repos import Repo
from tsforecast.config import config_from_dict
from tsforecast.io import write_json
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths

SID = "sid"


def _frame(lengths: list[int], values: Callable[[int, np.ndarray], dict[str, np.ndarray]]) -> pd.DataFrame:
    """Series ``s<i>`` of ``lengths[i]`` hourly rows, series after series; one series has no ``sid``."""
    parts = []
    for i, n in enumerate(lengths):
        ts = pd.date_range("2024-01-01", periods=n, freq="h") + pd.Timedelta(hours=i)
        cols = values(i, np.arange(n, dtype=np.float64))
        parts.append(pd.DataFrame({SID: f"s{i}", "timestamp": ts, **cols, "unused": 1.0}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.drop(columns=SID) if len(lengths) == 1 else frame


def coded_frame(lengths: list[int]) -> pd.DataFrame:
    """Series ``s<i>``: ``y = 1000 i + t`` and ``temp = 1000 i + 500 + t`` at row ``t``."""
    return _frame(lengths, lambda i, t: {"y": 1000.0 * i + t, "temp": 1000.0 * i + 500 + t})


def trend_frame(lengths: list[int]) -> pd.DataFrame:
    """Series ``s<i>``: a seasonal ``y`` on a trend (its train rows' mean is far from the whole
    series') and a daily ``temp``."""
    return _frame(
        lengths,
        lambda i, t: {
            "y": 1000.0 * i + 10 + 0.5 * t + np.sin(2 * np.pi * t / 6),
            "temp": 20.0 + i + np.cos(2 * np.pi * t / 24),
        },
    )


def validated_repo(root: Path, frame: pd.DataFrame, **sections: dict[str, Any]) -> Repo:
    """``root`` holding ``frame`` as validated data (``sid`` names the series when present) and
    the config of ``sections`` (target ``y``, covariate ``temp``; fraction split 0.6/0.2/0.2,
    ``input_size`` 4, ``horizon`` 2 unless overridden)."""
    id_column = SID if SID in frame.columns else None
    cfg = config_from_dict(
        {
            "data": {
                "target": "y",
                "covariates": ["temp"],
                "id_column": id_column,
                **sections.get("data", {}),
            },
            "split": sections.get("split", {"train": 0.6, "val": 0.2, "test": 0.2}),
            "window": {"input_size": 4, "horizon": 2, **sections.get("window", {})},
            "evaluate": {"seasonal_period": 2},
        }
    )
    paths = Paths.from_root(root)
    paths.validated.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(paths.validated / VALIDATED_FILE, index=False)
    n_series = 1 if id_column is None else frame[SID].nunique()
    write_json(paths.validated / VALIDATED_META, {"freq": "h", "id_column": id_column, "n_series": n_series})
    return Repo(cfg, paths)


__all__ = ["SID", "coded_frame", "trend_frame", "validated_repo"]
