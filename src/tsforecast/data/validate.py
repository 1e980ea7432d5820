"""Stage ``validate``: a Great Expectations suite over ``data/raw/``, short gaps filled.

The suite (what is checked and how each failure reads: :mod:`tsforecast.data.expectations`) runs
through the GX 1.x API (:mod:`tsforecast.data.gx_suite`: ephemeral context, pandas data source,
whole-dataframe batch definition, ExpectationSuite, ValidationDefinition, Checkpoint with an
UpdateDataDocsAction). With ``data.id_column`` set the panel is validated series by series
(:mod:`tsforecast.data.panel_validate`).

On success ``data/validated/`` holds the series on the regular grid, float64, with runs of up
to ``data.fill_gaps`` missing steps filled by time interpolation (at the series' edges the
nearest value is repeated). On failure one :class:`DataValidationError` carries one line per
failed expectation, and ``data/validated/`` keeps what it held; the JSON report and the Data
Docs are written either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, OrchestrationConfig, SplitConfig, WindowConfig
from tsforecast.errors import DataError, DataValidationError
from tsforecast.data.expectations import Grid, plan_checks
from tsforecast.data.gx_suite import expectation_rows, run_checks
from tsforecast.data.ingest import read_raw
from tsforecast.io import atomic_dir, read_json, recover_dir, write_json
from tsforecast.data.panel_validate import PanelValidateResult, validate_panel
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


@dataclass(frozen=True)
class ValidateResult:
    n_rows: int
    n_filled: int
    n_expectations: int
    freq: str


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


def run_validate(
    data: DataConfig,
    split: SplitConfig,
    window: WindowConfig,
    orchestration: OrchestrationConfig,
    paths: Paths,
) -> ValidateResult | PanelValidateResult:
    """Validate ``data/raw/`` with a GX suite; write ``data/validated/`` when every rule holds.

    A panel (``data.id_column`` set) is validated series by series, in chunks on Dask at
    ``orchestration.dask_address`` (:func:`tsforecast.data.panel_validate.validate_panel`).
    """
    raw = read_raw(paths.raw)  # edge: read
    source = _source_name(paths)
    if data.is_panel:
        return validate_panel(data, split, window, orchestration, paths, raw, source)
    plan = plan_checks(raw, data, split, window, source)  # pure
    log.info("validating %d rows of %s: %d expectations", len(raw), source, len(plan.checks))
    with atomic_dir(paths.reports / DATA_DOCS_DIR) as docs:  # edge: Data Docs, rebuilt whole
        results, lines = run_checks(plan, docs, prefix=f"{source}: ")
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
        "expectations": expectation_rows(results),
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
