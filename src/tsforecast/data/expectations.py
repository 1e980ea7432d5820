"""The validate stage's expectations: what is checked, on which frame, and how a failure reads.

Pure: builds the two Great Expectations suites that :func:`tsforecast.data.gx_suite.run_checks`
runs, one :class:`Check` per expectation, the same for S >= 1 series:

1. **The frame** (:func:`frame_suite`, over the long frame's rows): the id, timestamp, target
   and covariate columns exist, ids and timestamps are never empty, the target and covariates
   are numeric.
2. **The series** (:func:`series_suite`, over one row a series: :meth:`SeriesFacts.table`,
   computed vectorised in :mod:`tsforecast.data.series_facts`): a frequency to infer, no
   repeated timestamp, rows in time order where the file lists each series in one block, one
   frequency for every series (``data.freq`` or inferred; each series on its own grid of it),
   finite values, gaps (missing steps or empty cells) of at most ``data.fill_gaps`` steps, a
   target that varies, and enough rows for the split and the window.

Checks that need something earlier ones establish (the series need usable ids, timestamps and
target; gaps and lengths need the grid) are only planned when that holds; the earlier failure
is reported. How each failure reads: :mod:`tsforecast.data.messages`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig
from tsforecast.data.messages import Messages, join, rows_text
from tsforecast.data.series_facts import SeriesFacts
from tsforecast.dataset.long import id_column, without_series_id

# numpy dtypes accepted as numeric (nullable pandas numerics are converted to float64 first)
NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
]
NO_COUNT = 10**15  # a row count no series reaches: the split and the window fit no length


@dataclass
class Check:
    """One expectation, the column it concerns, and how to explain its failure in one line."""

    expectation: Any  # a great_expectations.expectations.Expectation
    column: str | None
    explain: Callable[[dict[str, Any]], str | None]


@dataclass
class Suite:
    """One GX suite: its name, the frame it validates and its checks."""

    name: str
    frame: pd.DataFrame
    checks: list[Check] = field(default_factory=list)


@dataclass(frozen=True)
class FramePlan:
    """The frame suite and what it leaves usable for the series suite."""

    suite: Suite
    columns: list[str]  # value columns present and numeric: the target (first), then covariates
    usable: bool  # ids, timestamps and target usable: the series can be checked


def is_numeric(values: pd.Series) -> bool:
    """Numeric and not boolean."""
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def _explain_type(source: str, col: str, values: pd.Series) -> str:
    bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
    items = [f"{v!r} (row {i})" for i, v in bad.iloc[:5].items()]
    return (
        f"{source}: column '{col}': values must be numeric: dtype is {values.dtype}"
        + (f", e.g. {join(items, len(bad))}" if items else "")
        + "; fix or remove the non-numeric values (leave a cell empty to have it interpolated)"
    )


def frame_suite(long: pd.DataFrame, data: DataConfig, source: str) -> FramePlan:
    """The GX checks over the long frame's rows: the columns exist, ids and timestamps are present,
    the target and covariates are numeric (pure)."""
    import great_expectations.expectations as gxe  # slow to import: only when validating

    present = list(long.columns)
    columns = list(without_series_id(long, data).columns)  # the file's own columns
    frame = long.copy(deep=False)
    checks: list[Check] = []
    idc, tsc = id_column(data), data.timestamp_column
    roles = [
        (idc, "data.id_column"),
        (tsc, "data.timestamp_column"),
        (data.target, "data.target"),
        *((c, "data.covariates") for c in data.covariates),
    ]
    for col, key in roles:
        checks.append(
            Check(
                gxe.ExpectColumnToExist(column=col),
                col,
                lambda r, col=col, key=key: (
                    f"{source}: column '{col}': column not found; columns are {columns}; set {key}"
                ),
            )
        )
    usable = True
    for col, what in ((idc, "series id"), (tsc, "timestamp")):
        if col not in present:
            usable = False
            continue
        nulls = long[col].isna().to_numpy()
        usable &= not nulls.any()
        checks.append(
            Check(
                gxe.ExpectColumnValuesToNotBeNull(column=col),
                col,
                lambda r, col=col, what=what, nulls=nulls: (
                    f"{source}: column '{col}': values must not be empty: {int(nulls.sum())} row(s) without "
                    f"a {what} ({rows_text(np.flatnonzero(nulls)[:5])}); every row needs one"
                ),
            )
        )
    numeric = []
    for col in [data.target, *data.covariates]:
        if col not in present:
            continue
        values = long[col]
        if is_numeric(values):
            numeric.append(col)
            if isinstance(values.dtype, pd.api.extensions.ExtensionDtype):  # nullable -> float64 with NaN
                frame[col] = values.to_numpy(dtype="float64", na_value=np.nan)
        checks.append(
            Check(
                gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=NUMERIC_TYPES),
                col,
                lambda r, col=col, values=values: _explain_type(source, col, values),
            )
        )
    usable &= data.target in numeric
    return FramePlan(Suite("raw_frame", frame, checks), numeric, usable)


def series_suite(say: Messages) -> Suite:
    """The GX checks over one row a series (:meth:`SeriesFacts.table`) (pure)."""
    import great_expectations.expectations as gxe

    f: SeriesFacts = say.facts
    d, tsc = say.data, say.data.timestamp_column
    checks: list[Check] = []

    def at_most(
        col: str, limit: float, concerns: str, explain: Callable[[dict[str, Any]], str], what: str
    ) -> None:
        checks.append(
            Check(
                gxe.ExpectColumnValuesToBeBetween(column=col, max_value=limit, description=what),
                concerns,
                explain,
            )
        )

    if f.inferred:
        checks.append(
            Check(
                gxe.ExpectColumnMaxToBeBetween(
                    column=f"{tsc}.distinct",
                    min_value=2,
                    description=f"some series has two distinct `{tsc}` values to infer the frequency from",
                ),
                tsc,
                say.no_frequency,
            )
        )
    at_most(f"{tsc}.repeated", 0, tsc, say.repeated, f"no series repeats a `{tsc}`")
    if f.a.out_of_order is not None:
        at_most(f"{tsc}.out_of_order", 0, tsc, say.out_of_order, f"each series' rows come in `{tsc}` order")
    if f.grid is not None and f.step is not None and not np.isnan(f.step).all():
        checks.append(
            Check(
                gxe.ExpectColumnMostCommonValueToBeInSet(
                    column=f"{tsc}.step",
                    value_set=[1.0],
                    ties_okay=True,
                    description=f"the most common step between rows is one data.freq ({d.freq})",
                ),
                tsc,
                say.step,
            )
        )
    if f.grid_known:
        assert f.grid is not None
        how = "inferred" if f.inferred else "data.freq"
        at_most(
            f"{tsc}.off_grid",
            0,
            tsc,
            say.off_grid,
            f"every `{tsc}` lies on its series' grid of {f.grid.freq} ({how})",
        )
    for k, col in enumerate(f.columns):
        at_most(f"{col}.non_finite", 0, col, say.non_finite(k), f"`{col}` holds no inf")
    if f.grid_known:
        for k, col in enumerate(f.columns):
            what = f"runs of missing steps in `{col}` are at most data.fill_gaps={d.fill_gaps} long"
            at_most(f"{col}.longest_gap", d.fill_gaps, col, say.gaps(k), what)
    checks.append(
        Check(
            gxe.ExpectColumnValuesToBeBetween(
                column=f"{d.target}.spread",
                min_value=0,
                strict_min=True,
                description=f"`{d.target}` varies in every series (max - min > 0)",
            ),
            d.target,
            say.constant,
        )
    )
    if f.grid_known:
        checks.append(
            Check(
                gxe.ExpectColumnValuesToBeBetween(
                    column=f"{tsc}.rows",
                    min_value=NO_COUNT if f.need is None else f.need,
                    description=f"every series has enough rows for the split and the window ({f.need})",
                ),
                None,
                say.too_short,
            )
        )
    return Suite("series", f.table(d), checks)


__all__ = ["NUMERIC_TYPES", "Check", "FramePlan", "Suite", "frame_suite", "is_numeric", "series_suite"]
