"""Stage ``validate``: a Great Expectations suite over ``data/raw/``, short gaps filled.

The suite (what is checked and how each failure reads: :mod:`tsforecast.expectations`) runs
through the GX 1.x API (ephemeral context, pandas data source, whole-dataframe batch
definition, ExpectationSuite, ValidationDefinition, Checkpoint with an UpdateDataDocsAction).

On success ``data/validated/`` holds the series on the regular grid, float64, with runs of up
to ``data.fill_gaps`` missing steps filled by time interpolation (at the series' edges the
nearest value is repeated). On failure one :class:`DataValidationError` carries one line per
failed expectation, and ``data/validated/`` keeps what it held; the JSON report and the Data
Docs are written either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.errors import DataError, DataValidationError
from tsforecast.expectations import SHOWN, Grid, Plan, plan_checks
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

log = logging.getLogger(__name__)

SITE_NAME = "tsforecast"
SUITE_NAME = "raw_series"


@dataclass(frozen=True)
class ValidateResult:
    n_rows: int
    n_filled: int
    n_expectations: int
    freq: str


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
