"""The validate stage's expectations: what is checked, on which columns, and how a failure reads.

Pure: builds the frame Great Expectations validates and one :class:`Check` per expectation;
``gx_suite.run_suite`` runs them. Rules GX has no expectation for are computed with pandas
into derived columns of the validated frame, and GX checks those columns:

- ``<timestamp>.on_grid``: whether each timestamp lies on the regular grid of the frequency;
- ``<timestamp>.steps``: the step from the previous timestamp, in units of the frequency
  (only when ``data.freq`` is given: its most common value must be 1);
- ``<column>.missing_run``: the length (in grid steps) of the run of missing values or missing
  timestamps that each row belongs to, or that ends just before it.

A panel (``data.id_column`` set) gets only the frame-level checks here
(:func:`panel_frame_plan`); its per-series rules run vectorised in :mod:`tsforecast.data.series_checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.errors import DataError
from tsforecast.data.freq import infer_offset, modal_step
from tsforecast.dataset.splits import min_rows, split_rows

SHOWN = 5  # offending values named per message line

# numpy dtypes accepted as numeric (nullable pandas numerics are converted to float64 first)
NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
]
FLOAT_MAX = float(np.finfo(np.float64).max)


@dataclass(frozen=True)
class Grid:
    """The regular grid the timestamps lie on: ``first + k * offset`` for ``k`` in ``[0, size)``."""

    offset: BaseOffset
    inferred: bool
    first: pd.Timestamp
    size: int
    positions: np.ndarray  # (rows,) grid step of each row, float (NaN off the grid)
    calendar: pd.DatetimeIndex | None  # the grid itself for non-fixed offsets (months, days in a tz)

    @property
    def freq(self) -> str:
        return self.offset.freqstr

    def at(self, k: int) -> pd.Timestamp:
        if self.calendar is not None:
            return self.calendar[k]
        return self.first + k * pd.Timedelta(self.offset)

    def index(self, unit: str) -> pd.DatetimeIndex:
        if self.calendar is not None:
            return self.calendar
        return pd.date_range(self.first, periods=self.size, freq=self.offset, unit=unit)


@dataclass
class Check:
    """One expectation, the column it concerns, and how to explain its failure in one line."""

    expectation: Any  # a great_expectations.expectations.Expectation
    column: str | None
    explain: Callable[[dict[str, Any]], str | None]


@dataclass
class Plan:
    """What to validate: the frame GX sees (raw + derived columns) and the checks over it."""

    frame: pd.DataFrame
    checks: list[Check] = field(default_factory=list)
    grid: Grid | None = None
    n_out: int = 0  # rows after the grid's missing steps are filled


# --------------------------------------------------------------------------- pure helpers


def _join(items: Sequence[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:SHOWN])
    return shown + (f", ... ({total} in all)" if total > SHOWN else "")


def _rows(rows: Sequence[int]) -> str:
    return "row" + ("s " if len(rows) > 1 else " ") + ", ".join(str(int(r)) for r in rows)


def _as_float(values: pd.Series) -> np.ndarray:
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def infer_grid(ts: pd.Series, freq: str) -> Grid | None:
    """The grid of ``ts`` (sorted, unique, non-null): ``freq`` or inferred, then each row's step.

    Inferred (``freq='auto'``), gaps do not hide the frequency (:func:`tsforecast.data.freq.infer_offset`):
    monthly data missing 24 months is ``MS`` with one 24-step gap, not an irregular ``31D``.
    """
    if len(ts) < 2:
        return None
    inferred = freq == "auto"
    offset = infer_offset(ts) if inferred else to_offset(freq)
    idx = pd.DatetimeIndex(ts)
    first = idx[0]
    if isinstance(offset, Tick):
        step = pd.Timedelta(offset)
        if step % pd.Timedelta(1, unit=idx.unit) != pd.Timedelta(0):
            idx = idx.as_unit("ns")
        step_int = step // pd.Timedelta(1, unit=idx.unit)
        delta = idx.asi8 - idx.asi8[0]
        on = delta % step_int == 0
        positions = np.where(on, delta // step_int, np.nan)
        last_pos = delta[-1] // step_int
        return Grid(offset, inferred, first, int(last_pos) + 1, positions.astype("float64"), None)
    calendar = pd.date_range(first, idx[-1], freq=offset, unit=idx.unit)
    found = calendar.get_indexer(idx)
    positions = np.where(found >= 0, found, np.nan).astype("float64")
    return Grid(offset, inferred, first, len(calendar), positions, calendar)


def missing_runs(values: np.ndarray, positions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of missing steps of one column on a grid of ``size`` steps.

    ``positions`` (rows,) are the grid steps of the rows (increasing integers); a step is
    missing when no row lies on it or the row's value is NaN. Returns ``per_row`` (rows,):
    the length of the run each row belongs to (a NaN row) or that ends just before it, and
    ``runs`` (k, 3): ``[first_step, last_step, length]`` of every run.
    """
    present = ~np.isnan(values)
    p = positions[present].astype(np.int64)
    if len(p) == 0:
        per_row = np.full(len(values), size, dtype=np.int64)
        return per_row, np.array([[0, size - 1, size]], dtype=np.int64)
    # run k ends just before the k-th present row; run len(p) is the tail
    starts = np.concatenate([[0], p + 1])
    ends = np.concatenate([p - 1, [size - 1]])
    lengths = ends - starts + 1
    before = np.cumsum(present)  # present rows at or before each row
    per_row = np.where(present, lengths[np.maximum(before - 1, 0)], lengths[before])
    keep = lengths > 0
    return per_row.astype(np.int64), np.stack([starts[keep], ends[keep], lengths[keep]], axis=1)


# --------------------------------------------------------------------------- the suite


class _SuiteBuilder:
    """Collects the expectations, the derived columns they read, and how each failure reads."""

    def __init__(
        self, raw: pd.DataFrame, data: DataConfig, split: SplitConfig, window: WindowConfig, source: str
    ) -> None:
        import great_expectations.expectations as gxe  # slow to import: only when validating

        self.gxe = gxe
        self.raw, self.source = raw, source
        self.data, self.split, self.window = data, split, window
        self.frame = raw.copy()  # raw + derived columns: what GX validates
        self.checks: list[Check] = []
        tsc = data.timestamp_column
        self.ts: pd.Series | None = raw[tsc] if tsc in raw.columns else None
        self.grid: Grid | None = None

    def line(self, col: str, rule: str, detail: str, fix: str) -> str:
        return f"{self.source}: column '{col}': {rule}: {detail}; {fix}"

    def add(
        self, expectation: Any, column: str | None, explain: Callable[[dict[str, Any]], str | None]
    ) -> None:
        self.checks.append(Check(expectation, column, explain))

    def derive(self, name: str, values: Any) -> str:
        """Add a derived column (under a name no raw column has) and return that name."""
        while name in self.frame.columns:
            name = f"_{name}"
        self.frame[name] = values
        return name

    def not_found(self, col: str, key: str) -> None:
        columns = list(self.raw.columns)
        self.add(
            self.gxe.ExpectColumnToExist(column=col),
            col,
            lambda r: self.line(col, "column not found", f"columns are {columns}", f"set {key}"),
        )

    def timestamp_checks(self) -> bool:
        """Exists, not null, unique, strictly increasing; True when all of them hold."""
        gxe, tsc = self.gxe, self.data.timestamp_column
        self.not_found(tsc, "data.timestamp_column")
        ts = self.ts
        if ts is None:
            return False
        nulls = ts.isna().to_numpy()
        self.add(
            gxe.ExpectColumnValuesToNotBeNull(column=tsc),
            tsc,
            lambda r: self.line(
                tsc,
                "values must not be empty",
                f"{int(nulls.sum())} empty timestamp(s) ({_rows(np.flatnonzero(nulls)[:SHOWN])})",
                "every row needs a timestamp",
            ),
        )
        valid = ts.dropna()
        dup = valid.duplicated(keep=False)

        def explain_dups(r: dict[str, Any]) -> str:
            groups = valid[dup].groupby(valid[dup], sort=True)
            items = [
                f"{t} appears {len(g)} times ({_rows(list(g.index[:SHOWN]))})"
                for t, g in list(groups)[: SHOWN + 1]
            ]
            detail = _join(items, groups.ngroups)
            return self.line(tsc, "values must be unique", detail, "drop or aggregate duplicates")

        self.add(gxe.ExpectColumnValuesToBeUnique(column=tsc), tsc, explain_dups)
        back = (valid < valid.shift(1)).to_numpy()  # out of order; equal neighbours are duplicates

        def explain_order(r: dict[str, Any]) -> str | None:
            if not back.any():  # fails on the duplicates alone: their line says it all
                return None
            at = np.flatnonzero(back)
            rows = valid.index
            items = [
                f"{valid.iloc[k]} (row {rows[k]}) comes after {valid.iloc[k - 1]} (row {rows[k - 1]})"
                for k in at[:SHOWN]
            ]
            detail = _join(items, len(at))
            return self.line(tsc, "values must be strictly increasing", detail, "sort the rows by time")

        self.add(gxe.ExpectColumnValuesToBeIncreasing(column=tsc, strictly=True), tsc, explain_order)
        return not nulls.any() and not dup.any() and ts.is_monotonic_increasing

    def grid_checks(self, grid: Grid) -> None:
        """One regular frequency: every timestamp on the grid; a given data.freq is the usual step."""
        gxe, d, ts = self.gxe, self.data, self.ts
        assert ts is not None
        tsc = d.timestamp_column
        how = "inferred" if grid.inferred else "data.freq"
        on_grid = ~np.isnan(grid.positions)

        def explain_grid(r: dict[str, Any]) -> str:
            off = np.flatnonzero(~on_grid)
            items = [f"{ts.iloc[i]} (row {i})" for i in off[:SHOWN]]
            return self.line(
                tsc,
                f"values must follow one regular frequency ({grid.freq!r}, {how})",
                f"off the grid from {grid.first} every {grid.freq!r}: {_join(items, len(off))}",
                "resample to one frequency"
                + (" or set data.freq" if grid.inferred else f" or change data.freq={d.freq!r}"),
            )

        name = self.derive(f"{tsc}.on_grid", on_grid)
        self.add(
            gxe.ExpectColumnValuesToBeInSet(
                column=name,
                value_set=[True],
                description=f"every `{tsc}` lies on one regular grid of {grid.freq} ({how})",
            ),
            name,
            explain_grid,
        )
        if grid.inferred:  # the inferred frequency is the most common step by construction
            return
        count = modal_step(ts)[1]

        def explain_freq(r: dict[str, Any]) -> str:
            alias = infer_offset(ts).freqstr  # MS for months, not their most common 31D
            return self.line(
                tsc,
                f"values must step by data.freq={d.freq!r}",
                f"the most common step is {alias} ({count} of {len(ts) - 1} steps)",
                f"set data.freq={alias!r} or 'auto'",
            )

        name = self.derive(f"{tsc}.steps", np.concatenate([[np.nan], np.diff(grid.positions)]))
        self.add(
            gxe.ExpectColumnMostCommonValueToBeInSet(
                column=name,
                value_set=[1.0],
                description=f"the most common step between rows is one data.freq ({d.freq})",
            ),
            name,
            explain_freq,
        )

    def value_checks(self, col: str, key: str, positions: np.ndarray | None, size: int) -> None:
        """Exists, numeric, finite, (target) not constant, gaps no longer than data.fill_gaps."""
        gxe, d, ts = self.gxe, self.data, self.ts
        self.not_found(col, key)
        if col not in self.raw.columns:
            return
        values = self.raw[col]
        numeric = _is_numeric(values)
        if numeric and isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
            self.frame[col] = _as_float(values)  # nullable Int64/Float64 -> float64 with NaN

        def explain_type(r: dict[str, Any]) -> str:
            bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
            items = [f"{v!r} (row {i})" for i, v in bad.iloc[:SHOWN].items()]
            detail = f"dtype is {values.dtype}" + (f", e.g. {_join(items, len(bad))}" if items else "")
            fix = "fix or remove the non-numeric values (leave a cell empty to have it interpolated)"
            return self.line(col, "values must be numeric", detail, fix)

        self.add(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=NUMERIC_TYPES), col, explain_type)
        if not numeric:
            return
        arr = _as_float(values)
        infinite = np.flatnonzero(np.isinf(arr))

        def explain_inf(r: dict[str, Any]) -> str:
            items = [f"{arr[i]} at {_where(ts, i)}" for i in infinite[:SHOWN]]
            fix = "replace them with numbers (or empty cells to have them interpolated)"
            return self.line(col, "values must be finite", _join(items, len(infinite)), fix)

        self.add(
            gxe.ExpectColumnValuesToBeBetween(column=col, min_value=-FLOAT_MAX, max_value=FLOAT_MAX),
            col,
            explain_inf,
        )
        if col == d.target and not len(infinite):  # with inf the deviation is undefined, not zero

            def explain_flat(r: dict[str, Any]) -> str:
                finite = arr[~np.isnan(arr)]
                detail = f"zero variance (every value is {finite[0]:g})" if len(finite) else "no values"
                return self.line(col, "values must vary", detail, "a constant series cannot be forecast")

            self.add(
                gxe.ExpectColumnStdevToBeBetween(column=col, min_value=0, strict_min=True), col, explain_flat
            )
        if positions is None:
            return
        per_row, runs = missing_runs(arr, positions, size)
        grid = self.grid

        def explain_runs(r: dict[str, Any]) -> str:
            long = runs[runs[:, 2] > d.fill_gaps]
            at = grid.at if grid is not None else (lambda k: _where(ts, k))
            items = [f"{int(k)} missing steps from {at(a)} to {at(b)}" for a, b, k in long[:SHOWN]]
            return self.line(
                col,
                f"gaps (missing timestamps or empty values) must be at most data.fill_gaps={d.fill_gaps}",
                _join(items, len(long)),
                "fill them in the source, drop that stretch of rows, or raise data.fill_gaps",
            )

        name = self.derive(f"{col}.missing_run", per_row)
        self.add(
            gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=0,
                max_value=d.fill_gaps,
                description=f"runs of missing steps in `{col}` are at most data.fill_gaps={d.fill_gaps} long",
            ),
            name,
            explain_runs,
        )

    def row_count_check(self, n_out: int) -> None:
        """Enough rows for ``split_rows``, counting the grid steps that filling will add."""
        need = min_rows(self.split, self.window)
        added = n_out - len(self.raw)
        min_value = 10**15 if need is None else max(need - added, 0)  # 10**15: no count will do

        def explain_rows(r: dict[str, Any]) -> str:
            try:
                split_rows(n_out, self.split, self.window)
            except DataError as e:
                return f"{self.source}: {e}"
            return f"{self.source}: {n_out} rows are too few for the split and the window (need {need})"

        self.add(
            self.gxe.ExpectTableRowCountToBeBetween(
                min_value=min_value,
                description=f"enough rows for the split and the window: at least {need} once the grid's "
                f"{added} missing steps are filled",
            ),
            None,
            explain_rows,
        )


def plan_checks(
    raw: pd.DataFrame, data: DataConfig, split: SplitConfig, window: WindowConfig, source: str
) -> Plan:
    """The frame GX validates (raw + derived columns) and one :class:`Check` per expectation (pure).

    Checks that need something earlier ones establish (a grid needs sound timestamps, a
    variance needs numbers) are only planned when that holds; the earlier failure is reported.
    """
    d = data
    suite = _SuiteBuilder(raw, data, split, window, source)
    if suite.timestamp_checks() and suite.ts is not None:
        suite.grid = infer_grid(suite.ts, d.freq)
    grid = suite.grid
    if grid is not None:
        suite.grid_checks(grid)
    # gaps: on the grid when there is one; in row order when the timestamps are unusable
    positions: np.ndarray | None = np.arange(len(raw), dtype="float64")
    size = len(raw)
    if grid is not None:
        on_grid = not np.isnan(grid.positions).any()
        positions, size = (grid.positions, grid.size) if on_grid else (None, len(raw))
    for col, key in [(d.target, "data.target"), *((c, "data.covariates") for c in d.covariates)]:
        suite.value_checks(col, key, positions, size)
    n_out = grid.size if grid is not None and positions is not None else len(raw)
    suite.row_count_check(n_out)
    return Plan(frame=suite.frame, checks=suite.checks, grid=grid, n_out=n_out)


def panel_frame_plan(raw: pd.DataFrame, data: DataConfig, source: str) -> Plan:
    """A panel's GX checks over the whole frame: the columns exist, ids and timestamps are present,
    the target and covariates are numeric (the per-series rules: :mod:`tsforecast.data.panel_validate`)."""
    import great_expectations.expectations as gxe

    assert data.id_column is not None
    columns = list(raw.columns)
    frame = raw.copy(deep=False)
    checks: list[Check] = []
    roles = [
        (data.id_column, "data.id_column"),
        (data.timestamp_column, "data.timestamp_column"),
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
    for col, what in ((data.id_column, "series id"), (data.timestamp_column, "timestamp")):
        if col in columns:
            nulls = raw[col].isna().to_numpy()
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToNotBeNull(column=col),
                    col,
                    lambda r, col=col, what=what, nulls=nulls: (
                        f"{source}: column '{col}': values must "
                        f"not be empty: {int(nulls.sum())} row(s) without a {what} (rows "
                        f"{', '.join(map(str, np.flatnonzero(nulls)[:5]))}); every row needs one"
                    ),
                )
            )
    for col in [data.target, *data.covariates]:
        if col not in columns:
            continue
        values = raw[col]
        if _is_numeric(values) and isinstance(values.dtype, pd.api.extensions.ExtensionDtype):
            frame[col] = _as_float(values)  # nullable Int64/Float64 -> float64 with NaN
        checks.append(
            Check(
                gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=NUMERIC_TYPES),
                col,
                lambda r, col=col, values=values: _explain_panel_type(source, col, values),
            )
        )
    return Plan(frame=frame, checks=checks)


def _explain_panel_type(source: str, col: str, values: pd.Series) -> str:
    bad = values[values.notna() & pd.to_numeric(values, errors="coerce").isna()]
    items = ", ".join(f"{v!r} (row {i})" for i, v in bad.iloc[:5].items())
    return (
        f"{source}: column '{col}': values must be numeric: dtype is {values.dtype}"
        + (f", e.g. {items} ({len(bad)} in all)" if items else "")
        + "; fix or remove the non-numeric values (leave a cell empty to have it interpolated)"
    )


def _where(ts: pd.Series | None, i: int) -> str:
    if ts is None or pd.isna(ts.iloc[i]):
        return f"row {i}"
    return f"{ts.iloc[i]} (row {i})"
