"""Stage ``validate``: a Great Expectations suite over ``data/raw/``, short gaps filled.

The suite runs through the GX 1.x API (ephemeral context, pandas data source, whole-dataframe
batch definition, ExpectationSuite, ValidationDefinition, Checkpoint with an
UpdateDataDocsAction). Rules GX has no expectation for are computed with pandas into derived
columns of the validated frame, and GX checks those columns:

- ``<timestamp>.on_grid``: whether each timestamp lies on the regular grid of the frequency;
- ``<timestamp>.steps``: the step from the previous timestamp, in units of the frequency
  (only when ``data.freq`` is given: its most common value must be 1);
- ``<column>.missing_run``: the length (in grid steps) of the run of missing values or missing
  timestamps that each row belongs to, or that ends just before it.

On success ``data/validated/`` holds the series on the regular grid, float64, with runs of up
to ``data.fill_gaps`` missing steps filled by time interpolation (at the series' edges the
nearest value is repeated). On failure one :class:`DataValidationError` carries one line per
failed expectation, and ``data/validated/`` keeps what it held; the JSON report and the Data
Docs are written either way.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.errors import DataError, DataValidationError
from tsforecast.ingest import read_raw
from tsforecast.io import atomic_dir, read_json, recover_dir, write_json
from tsforecast.paths import (
    DATA_DOCS_DIR,
    RAW_FILE,
    RAW_META,
    VALIDATED_FILE,
    VALIDATED_META,
    VALIDATION_REPORT,
    Paths,
)
from tsforecast.splits import min_rows, split_rows

log = logging.getLogger(__name__)

SITE_NAME = "tsforecast"
SUITE_NAME = "raw_series"
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
class ValidateResult:
    n_rows: int
    n_filled: int
    n_expectations: int
    freq: str


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


def _offset_of_step(step: pd.Timedelta) -> BaseOffset:
    """A pandas offset for a fixed step; whole days become calendar days (DST-safe)."""
    day = pd.Timedelta(days=1)
    if step % day == pd.Timedelta(0):
        return to_offset(f"{step // day}D")
    return to_offset(step)


def _modal_step(ts: pd.Series) -> tuple[pd.Timedelta, int]:
    diffs = ts.diff().iloc[1:]
    counts = diffs.value_counts()
    top = counts.max()
    step = min(counts[counts == top].index)  # ties: the finer grid
    return pd.Timedelta(step), int(top)


def infer_grid(ts: pd.Series, freq: str) -> Grid | None:
    """The grid of ``ts`` (sorted, unique, non-null): ``freq`` or inferred, then each row's step."""
    if len(ts) < 2:
        return None
    inferred = freq == "auto"
    if inferred:
        offset = None
        if len(ts) >= 3:
            with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return offsets
                warnings.simplefilter("ignore")
                guess = pd.infer_freq(pd.DatetimeIndex(ts))
            offset = to_offset(guess) if guess is not None else None
        if offset is None:  # gaps or too few rows: the most common step is the frequency
            offset = _offset_of_step(_modal_step(ts)[0])
    else:
        offset = to_offset(freq)
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
        modal, count = _modal_step(ts)

        def explain_freq(r: dict[str, Any]) -> str:
            alias = _offset_of_step(modal).freqstr
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


def _where(ts: pd.Series | None, i: int) -> str:
    if ts is None or pd.isna(ts.iloc[i]):
        return f"row {i}"
    return f"{ts.iloc[i]} (row {i})"


# --------------------------------------------------------------------------- running GX


def _gx_quiet() -> None:
    """No phoning home, no progress bars (set in the context config), INFO logs kept down."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX sets this module logger to INFO itself; the others inherit from "great_expectations"
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET, logging.INFO):
            logger.setLevel(logging.WARNING)


def run_suite(plan: Plan, docs_dir: Path) -> list[dict[str, Any]]:
    """Run the checks through a GX checkpoint, building the Data Docs site in ``docs_dir``.

    Returns one dict per check: the expectation's type, column, success and result.
    """
    _gx_quiet()
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
    }
    # in-memory stores; our one docs site instead of the default one in a fresh temp dir
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={SITE_NAME: site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("tsforecast")
        .add_dataframe_asset("raw")
        .add_batch_definition_whole_dataframe("whole series")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for check in plan.checks:
        suite.add_expectation(check.expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="validate raw", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="validate",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="update data docs", site_names=[SITE_NAME])],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SHOWN},
        )
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": plan.frame}, run_id=RunIdentifier(run_name="tsforecast-validate")
    )
    (suite_result,) = outcome.run_results.values()
    by_id = {r.expectation_config.id: r for r in suite_result.results}
    results = []
    for check in plan.checks:
        r = by_id[check.expectation.id]
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        results.append(
            {
                "expectation": r.expectation_config.type,
                "column": check.column,
                "success": bool(r.success) and not raised,
                "result": dict(r.result or {}),
                "exception": r.exception_info.get("exception_message") if raised else None,
            }
        )
    return results


def _plain(value: Any) -> Any:
    """JSON-friendly values: numpy scalars to Python, timestamps and non-finite floats to text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _details(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count")
    out = {k: result[k] for k in keys if k in result}
    if "partial_unexpected_list" in result:
        out["unexpected_values"] = result["partial_unexpected_list"][:SHOWN]
    if "partial_unexpected_index_list" in result:
        out["unexpected_rows"] = result["partial_unexpected_index_list"][:SHOWN]
    return _plain(out)


# --------------------------------------------------------------------------- filling gaps


def fill(raw: pd.DataFrame, data: DataConfig, grid: Grid) -> tuple[pd.DataFrame, list[pd.Timestamp]]:
    """The series on the regular grid, float64, its missing steps time-interpolated (pure)."""
    d = data
    columns = [d.target, *d.covariates]
    ts = pd.DatetimeIndex(raw[d.timestamp_column])
    index = grid.index(ts.unit)
    values = np.full((grid.size, len(columns)), np.nan)  # (steps, C)
    values[grid.positions.astype(np.int64)] = raw[columns].to_numpy(dtype="float64", na_value=np.nan)
    missing = np.isnan(values).any(axis=1)
    out = pd.DataFrame(values, index=index, columns=columns)
    if missing.any():
        out = out.interpolate(method="time", limit_direction="both")
    out.index.name = d.timestamp_column
    return out.reset_index(), list(index[missing])


# --------------------------------------------------------------------------- the stage


def _source_name(paths: Paths) -> str:
    meta_path = paths.raw / RAW_META
    if meta_path.is_file():
        try:
            source = read_json(meta_path).get("source")
        except (ValueError, AttributeError):
            source = None
        if source:
            return str(source)
    raw = paths.raw / RAW_FILE
    try:
        return str(raw.relative_to(paths.root))
    except ValueError:
        return str(raw)


def run_validate(data: DataConfig, split: SplitConfig, window: WindowConfig, paths: Paths) -> ValidateResult:
    """Validate ``data/raw/`` with a GX suite; write ``data/validated/`` when every rule holds."""
    raw = read_raw(paths.raw)  # edge: read
    source = _source_name(paths)
    plan = plan_checks(raw, data, split, window, source)  # pure
    log.info("validating %d rows of %s: %d expectations", len(raw), source, len(plan.checks))
    with atomic_dir(paths.reports / DATA_DOCS_DIR) as docs:  # edge: Data Docs, rebuilt whole
        results = run_suite(plan, docs)
    lines = []
    for check, res in zip(plan.checks, results, strict=True):
        res["message"] = None
        if not res["success"]:
            res["message"] = (
                f"{source}: GX could not evaluate {res['expectation']}: {res['exception']}"
                if res["exception"]
                else check.explain(res["result"])
            )
            if res["message"]:
                lines.append(res["message"])
    failed = [r for r in results if not r["success"]]
    if not failed and plan.grid is None:  # cannot happen: too few rows fail the row count first
        lines.append(f"{source}: column '{data.timestamp_column}': too few timestamps to infer a frequency")
    ok = not failed and not lines
    filled: list[pd.Timestamp] = []
    out: pd.DataFrame | None = None
    if ok and plan.grid is not None:
        out, filled = fill(raw, data, plan.grid)  # pure
    report = {
        "success": ok,
        "n_rows": len(out) if out is not None else plan.n_out,
        "n_raw_rows": len(raw),
        "n_filled": len(filled),
        "n_expectations": len(results),
        "n_failed": len(failed),
        "freq": plan.grid.freq if plan.grid is not None else None,
        "source": source,
        "expectations": [
            {
                "expectation": r["expectation"],
                "column": r["column"],
                "success": r["success"],
                "details": {**_details(r["result"]), **({"message": r["message"]} if r["message"] else {})},
            }
            for r in results
        ],
        "filled": [str(t) for t in filled],
    }
    write_json(paths.reports / VALIDATION_REPORT, report)  # edge: report, pass or fail
    if out is None or plan.grid is None:
        log.info("validation failed: %d of %d expectations", len(failed), len(results))
        report_path = paths.reports / VALIDATION_REPORT
        fallback = f"{source}: validation failed; see {report_path}"
        raise DataValidationError("\n".join(dict.fromkeys(lines)) or fallback)
    ts = out[data.timestamp_column]
    tz = ts.dt.tz
    meta = {
        "freq": plan.grid.freq,
        "n_rows": len(out),
        "start": str(ts.iloc[0]),
        "end": str(ts.iloc[-1]),
        "tz": str(tz) if tz is not None else None,
        "filled": [str(t) for t in filled],
        "source": source,
    }
    with atomic_dir(paths.validated) as tmp:  # edge: atomic write
        out.to_parquet(tmp / VALIDATED_FILE, index=False)
        write_json(tmp / VALIDATED_META, meta)
    log.info(
        "validated %d rows: %d expectations passed, %d gap steps filled",
        len(out),
        len(results),
        len(filled),
    )
    return ValidateResult(
        n_rows=len(out), n_filled=len(filled), n_expectations=len(results), freq=plan.grid.freq
    )


def read_validated(validated_dir: Path) -> tuple[pd.DataFrame, dict]:
    """The frame and meta that ``run_validate`` wrote."""
    recover_dir(validated_dir, clean=False)  # a swap killed between its two renames
    path = validated_dir / VALIDATED_FILE
    if not path.is_file():
        raise DataError(f"{path} not found; run `tsforecast validate` (or `dvc repro validate`) first")
    return pd.read_parquet(path), read_json(validated_dir / VALIDATED_META)
