"""The long frame ``[id, timestamp, target, covariates]``: the only shape between the edges.

One series is a panel of one. With no ``data.id_column`` the reader adds an implicit id column
(:data:`SERIES_ID`, every row holding the target's name) and the writers of one-series outputs
drop it again, so forecast.parquet and the other one-series files keep their shape. The
functions here are the only places that ask whether the data names an id column; they take
params' ``data`` section or a model card alike (anything with ``id_column`` and ``target``).
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from tsforecast.errors import DataError

#: The implicit id column of a one-series data set (by_series.parquet's column for one series).
SERIES_ID = "series"


class SeriesSource(Protocol):
    """What names a data set's series: params' ``data`` section (DataConfig) or a model card."""

    @property
    def id_column(self) -> str | None: ...

    @property
    def target(self) -> str: ...


def is_one_series(data: SeriesSource) -> bool:
    """Whether ``data`` names no id column: one series, under the implicit id (the one place it is asked)."""
    return data.id_column is None


def id_column(data: SeriesSource) -> str:
    """The id column of the long frame: ``data.id_column``, or the implicit :data:`SERIES_ID`."""
    return data.id_column or SERIES_ID


def frame_columns(data: SeriesSource, *columns: str) -> list[str]:
    """The columns a user's frame holds: the id column (none for one series), then ``columns``."""
    return [*([] if is_one_series(data) else [id_column(data)]), *columns]


def with_series_id(frame: pd.DataFrame, data: SeriesSource) -> pd.DataFrame:
    """``frame`` as a long frame: one series gets the implicit id column."""
    if not is_one_series(data):
        return frame
    if SERIES_ID in frame.columns:
        raise DataError(
            f"column {SERIES_ID!r} is reserved for the implicit series id of a one-series data set; "
            f"rename it, or set data.id_column: {SERIES_ID} if it names the series"
        )
    return frame.assign(**{SERIES_ID: pd.Categorical([data.target] * len(frame))})


def without_series_id(frame: pd.DataFrame, data: SeriesSource) -> pd.DataFrame:
    """A one-series output without the implicit id column, so it keeps its one-series shape."""
    if not is_one_series(data) or SERIES_ID not in frame.columns:
        return frame
    return frame.drop(columns=SERIES_ID)


__all__ = [
    "SERIES_ID",
    "SeriesSource",
    "frame_columns",
    "id_column",
    "is_one_series",
    "with_series_id",
    "without_series_id",
]
