"""The long frame ``[id, timestamp, target, covariates]``: the only shape between the edges.

One series is a panel of one. With no ``data.id_column`` the reader adds an implicit id column
(:data:`SERIES_ID`, every row holding the target's name) and the writers of one-series outputs
drop it again, so forecast.parquet and the other one-series files keep their shape. These two
functions are the only places that ask whether the data names an id column.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from tsforecast.config import DataConfig
from tsforecast.errors import DataError

#: The implicit id column of a one-series data set (by_series.parquet's column for one series).
SERIES_ID = "series"


class NamesIdColumn(Protocol):
    """What names the data's id column (None: one series): ``data`` params, or a model card."""

    @property
    def id_column(self) -> str | None: ...


def id_column(data: DataConfig) -> str:
    """The id column of the long frame: ``data.id_column``, or the implicit :data:`SERIES_ID`."""
    return data.id_column or SERIES_ID


def with_series_id(frame: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """``frame`` as a long frame: one series gets the implicit id column (the one place it is asked)."""
    if data.id_column is not None:
        return frame
    if SERIES_ID in frame.columns:
        raise DataError(
            f"column {SERIES_ID!r} is reserved for the implicit series id of a one-series data set; "
            f"rename it, or set data.id_column: {SERIES_ID} if it names the series"
        )
    return frame.assign(**{SERIES_ID: pd.Categorical([data.target] * len(frame))})


def without_series_id(frame: pd.DataFrame, data: NamesIdColumn) -> pd.DataFrame:
    """A one-series output without the implicit id column, so it keeps its one-series shape."""
    if data.id_column is not None or SERIES_ID not in frame.columns:
        return frame
    return frame.drop(columns=SERIES_ID)


__all__ = ["SERIES_ID", "id_column", "with_series_id", "without_series_id"]
