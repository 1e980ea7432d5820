"""Small real series for the data tests: one series, or a panel of them in one long frame by ``sid``.

One series is a panel of one: the tests that hold for both build their data with
:func:`frame_of` and parametrize over S in {1, 3}; :func:`with_ids` is the matching
``data.id_column`` override (none for one series).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

N = 40  # rows per series; the split and window of the make_repo fixture need at least 30


def hourly_frame(n: int = N, freq: str = "h") -> pd.DataFrame:
    """One non-constant series: columns timestamp, y, from 2000-01-01 every ``freq``."""
    ts = pd.date_range("2000-01-01", periods=n, freq=freq)
    return pd.DataFrame({"timestamp": ts, "y": 10 + np.sin(np.arange(n, dtype="float64"))})


def panel_frame(n_series: int = 4, n: int = N, shuffle: bool = True) -> pd.DataFrame:
    """Series ``s<i>``: hourly from 2000-01-01 + i hours, ``y = 1000 i + row + sin(row)``; rows shuffled."""
    parts = []
    for i in range(n_series):
        ts = pd.date_range("2000-01-01", periods=n, freq="h") + pd.Timedelta(hours=i)
        y = 1000.0 * i + np.arange(n) + np.sin(np.arange(n))
        parts.append(pd.DataFrame({"sid": f"s{i}", "timestamp": ts, "y": y}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True) if shuffle else frame


def frame_of(n_series: int, n: int = N) -> pd.DataFrame:
    """One series (:func:`hourly_frame`) or a panel of ``n_series`` in order (:func:`panel_frame`)."""
    return hourly_frame(n) if n_series == 1 else panel_frame(n_series, n, shuffle=False)


def with_ids(n_series: int) -> dict[str, Any]:
    """The ``data`` overrides that read :func:`frame_of`'s frame: ``id_column`` for a panel."""
    return {} if n_series == 1 else {"id_column": "sid"}


def series_rows(frame: pd.DataFrame, sid: str = "s0") -> pd.Index:
    """The index of series ``sid``'s rows in time order (every row of a one-series frame)."""
    own = frame if "sid" not in frame.columns else frame[frame["sid"] == sid]
    return own.sort_values("timestamp").index


def drop(frame: pd.DataFrame, sid: str, rows: list[int]) -> pd.DataFrame:
    """``frame`` without rows ``rows`` (in time order) of series ``sid``."""
    return frame.drop(index=series_rows(frame, sid)[rows])


__all__ = ["N", "drop", "frame_of", "hourly_frame", "panel_frame", "series_rows", "with_ids"]
