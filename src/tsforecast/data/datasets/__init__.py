"""Data sets shipped inside the package: never downloaded, readable from an installed wheel.

``builtin:m4-hourly`` is :func:`load_m4_hourly`: the 414 training series of the M4
competition's hourly set (Makridakis, Spiliotis and Assimakopoulos, 2020), stored as the
original CSV compressed with xz (``m4_hourly_train.csv.xz``; see the README beside it).
"""

from __future__ import annotations

import hashlib
import io
import lzma
from importlib import resources

import numpy as np
import pandas as pd

M4_HOURLY_FILE = "m4_hourly_train.csv.xz"
# sha256 of the decompressed bytes: the original Hourly-train.csv of the M4-methods repository.
M4_HOURLY_SHA256 = "ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f"
# M4 publishes no timestamps with the series: every series gets an hourly index from this origin.
M4_HOURLY_ORIGIN = pd.Timestamp("2000-01-01 00:00")
M4_HOURLY_FREQ = "h"
M4_HOURLY_HORIZON = 48  # the competition's forecast horizon (hours)
M4_HOURLY_SEASONALITY = 24  # M4's m for hourly data


def m4_hourly_csv_bytes() -> bytes:
    """The original ``Hourly-train.csv``, byte for byte (decompressed from the package)."""
    packed = resources.files(__name__).joinpath(M4_HOURLY_FILE).read_bytes()
    return lzma.decompress(packed)


def m4_hourly_arrays() -> tuple[list[str], list[np.ndarray]]:
    """Series ids (``H1`` .. ``H414``, file order) and each series' values, float64, own length.

    Raises ValueError if the embedded file does not match :data:`M4_HOURLY_SHA256` (a damaged
    install): reinstall the package.
    """
    raw = m4_hourly_csv_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != M4_HOURLY_SHA256:
        raise ValueError(
            f"the embedded {M4_HOURLY_FILE} decompresses to sha256 {digest}, expected "
            f"{M4_HOURLY_SHA256}: the installed package is damaged - reinstall tsforecast"
        )
    wide = pd.read_csv(io.BytesIO(raw), index_col=0)
    values = wide.to_numpy(dtype="float64")  # (414, 960), NaN after each series' end
    lengths = (~np.isnan(values)).sum(axis=1)
    ids = [str(i) for i in wide.index]
    return ids, [row[:n].copy() for row, n in zip(values, lengths, strict=True)]


def load_m4_hourly(
    id_column: str = "unique_id", timestamp_column: str = "timestamp", target: str = "value"
) -> pd.DataFrame:
    """The M4 hourly training panel in long format: one row per (series, hour).

    Columns ``id_column`` (``H1`` .. ``H414``), ``timestamp_column`` (hourly, every series
    starting at :data:`M4_HOURLY_ORIGIN`, 2000-01-01 00:00) and ``target`` (float64). Each
    series has only its own 700 to 960 values; rows are ordered by series (file order), then time.
    """
    names = [id_column, timestamp_column, target]
    if len(set(names)) != 3:
        raise ValueError(f"load_m4_hourly: column names {names} must be distinct - rename one")
    ids, series = m4_hourly_arrays()
    lengths = np.array([len(s) for s in series])
    grid = pd.date_range(M4_HOURLY_ORIGIN, periods=int(lengths.max()), freq=M4_HOURLY_FREQ)
    steps = np.concatenate([np.arange(n) for n in lengths])
    return pd.DataFrame(
        {
            id_column: np.repeat(np.array(ids, dtype=object), lengths),
            timestamp_column: grid[steps],
            target: np.concatenate(series),
        }
    )
