"""Stage ``validate``: Great Expectations over ``data/raw/``, one way for S >= 1 series; short gaps filled.

One series is a panel of one: the implicit id column is added where ``data/raw/`` is read and
dropped where ``data/validated/`` is written (:mod:`tsforecast.dataset.long`); in between,
everything is checked one way. Two GX suites (what each checks and how each failure reads:
:mod:`tsforecast.data.expectations`), run by :mod:`tsforecast.data.gx_suite` into one Data Docs
site:

1. **the frame**: the columns exist, ids and timestamps are never empty, values are numeric;
2. **the series**, one row a series, from vectorised per-series checks in chunks
   (:mod:`tsforecast.data.series_facts`, on Dask at ``orchestration.dask_address``): one
   frequency (``data.freq`` or inferred; fixed steps: from each series' first timestamp;
   calendar steps such as ``MS``: on the data's calendar), no repeated timestamp, rows in time
   order where the file lists each series in one block, finite values, gaps of at most
   ``data.fill_gaps`` steps, a target that varies, enough rows for the split and the window.

On success ``data/validated/`` holds the long frame on every series' grid (id as a categorical
of text ids, timestamp, float64 columns; one series: timestamp and values), its runs of up to
``data.fill_gaps`` missing steps filled by linear interpolation inside the series (at its edges
the nearest value is repeated), and ``meta.json``. On failure one :class:`DataValidationError`
carries one line per broken rule, and ``data/validated/`` keeps what it held. The JSON report
and the Data Docs are written either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, OrchestrationConfig, SplitConfig, WindowConfig
from tsforecast.data.expectations import FramePlan, frame_suite, series_suite
from tsforecast.data.gx_suite import expectation_rows, run_checks
from tsforecast.data.ingest import read_raw
from tsforecast.data.messages import Messages
from tsforecast.data.series_facts import SeriesFacts, series_facts, validated_frame
from tsforecast.dataset.long import id_column, with_series_id, without_series_id
from tsforecast.errors import DataError, DataValidationError
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


@dataclass(frozen=True)
class ValidateResult:
    n_series: int
    n_rows: int
    n_filled: int
    n_expectations: int
    freq: str


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


def _filled_by_series(facts: SeriesFacts) -> dict[str, int]:
    filled = facts.checks.filled
    return {str(facts.a.ids[i]): int(filled[i]) for i in np.flatnonzero(filled)}


def _filled(
    facts: SeriesFacts, out: pd.DataFrame | None, timestamp_column: str
) -> list[str] | dict[str, int]:
    """The filled steps: one series lists their timestamps, many count them by series."""
    if facts.n_series > 1:
        return _filled_by_series(facts) if out is not None else {}
    if out is None:
        return []
    return [str(t) for t in out[timestamp_column][facts.checks.filled_mask]]


def _report(
    data: DataConfig,
    source: str,
    n_raw: int,
    results: list[dict[str, Any]],
    facts: SeriesFacts | None,
    out: pd.DataFrame | None,
) -> dict[str, Any]:
    """reports/validation.json: the counts, each expectation's result, what was filled or is bad."""
    failed = [r for r in results if not r["success"]]
    report: dict[str, Any] = {
        "success": out is not None,
        "source": source,
        "id_column": data.id_column,
        "n_series": None,
        "n_rows": None,
        "n_raw_rows": n_raw,
        "n_trimmed_rows": 0,
        "n_filled": 0,
        "freq": None,
        "n_expectations": len(results),
        "n_failed": len(failed),
        "expectations": expectation_rows(results),
        "filled": [],
    }
    if facts is None:
        return report
    sizes, bad = facts.sizes(), facts.bad()
    filled = _filled(facts, out, data.timestamp_column)
    known = sizes[~np.isnan(sizes)]
    report.update(
        n_series=facts.n_series,
        n_rows=len(out) if out is not None else (int(known.sum()) if known.size else None),
        n_trimmed_rows=facts.a.trimmed,
        n_filled=int(facts.checks.filled.sum()) if out is not None else 0,
        freq=facts.grid.freq if facts.grid_known and facts.grid is not None else None,
        filled=filled,
        n_series_filled=int((facts.checks.filled > 0).sum()) if out is not None else 0,
        filled_by_series=_filled_by_series(facts) if out is not None else {},
        n_series_bad=int(bad.sum()),
        lengths=(
            {"min": int(known.min()), "median": float(np.median(known)), "max": int(known.max())}
            if known.size
            else None
        ),
    )
    if out is None:
        report["bad_series"] = [str(i) for i in facts.a.ids[bad]]
    return report


def _meta(data: DataConfig, source: str, facts: SeriesFacts, out: pd.DataFrame) -> dict[str, Any]:
    """data/validated/meta.json."""
    assert facts.grid is not None
    ts = out[data.timestamp_column]
    return {
        "freq": facts.grid.freq,
        "n_rows": len(out),
        "start": str(ts.min()),
        "end": str(ts.max()),
        "tz": str(facts.a.tz) if facts.a.tz is not None else None,
        "filled": _filled(facts, out, data.timestamp_column),
        "source": source,
        "id_column": data.id_column,
        "n_series": facts.n_series,
    }


def run_validate(
    data: DataConfig,
    split: SplitConfig,
    window: WindowConfig,
    orchestration: OrchestrationConfig,
    paths: Paths,
) -> ValidateResult:
    """Validate ``data/raw/`` with GX (frame, then series); write ``data/validated/`` when every rule holds.

    The series are checked in chunks, on Dask at ``orchestration.dask_address``
    (:func:`tsforecast.data.series_facts.series_facts`).
    """
    raw = read_raw(paths.raw)  # edge: read
    long = with_series_id(raw, data)  # one series is a panel of one
    source = _source_name(paths)
    log.info("validating %d rows of %s", len(long), source)
    frame: FramePlan = frame_suite(long, data, source)  # pure
    facts: SeriesFacts | None = None
    suites = [frame.suite]
    if frame.usable:  # pure, in chunks, maybe on Dask
        n_series = int(long[id_column(data)].nunique())
        split = split.resolved(n_series, window.input_size, window.horizon)  # auto: by the number of series
        facts = series_facts(long, data, frame.columns, split, window, orchestration.dask_address)
        if facts.a.trimmed:
            log.info("dropped %d rows with an empty target before or after a series' values", facts.a.trimmed)
        suites.append(series_suite(Messages(facts, data, split, window, source)))
    with atomic_dir(paths.reports / DATA_DOCS_DIR) as docs:  # edge: Data Docs, rebuilt whole
        results, lines = run_checks(suites, docs, prefix=f"{source}: ")
    out = None
    if facts is not None and not lines and facts.checks.values is not None:
        out = validated_frame(facts, data)  # pure: every series on its grid, short gaps filled
    write_json(paths.reports / VALIDATION_REPORT, _report(data, source, len(raw), results, facts, out))
    if out is None or facts is None:
        log.info("validation failed: %s", "; ".join(lines)[:500])
        fallback = f"{source}: validation failed; see {paths.reports / VALIDATION_REPORT}"
        raise DataValidationError("\n".join(dict.fromkeys(lines)) or fallback)
    meta = _meta(data, source, facts, out)
    with atomic_dir(paths.validated) as tmp:  # edge: atomic write, one series without its implicit id
        without_series_id(out, data).to_parquet(tmp / VALIDATED_FILE, index=False)
        write_json(tmp / VALIDATED_META, meta)
    n_filled = int(facts.checks.filled.sum())
    log.info("validated %d series, %d rows: %d grid steps filled", facts.n_series, len(out), n_filled)
    return ValidateResult(
        n_series=facts.n_series,
        n_rows=len(out),
        n_filled=n_filled,
        n_expectations=len(results),
        freq=meta["freq"],
    )


def read_validated(validated_dir: Path) -> tuple[pd.DataFrame, dict]:
    """The frame and meta that ``run_validate`` wrote."""
    recover_dir(validated_dir, clean=False)  # a swap killed between its two renames
    path = validated_dir / VALIDATED_FILE
    if not path.is_file():
        raise DataError(f"{path} not found; run `tsforecast validate` (or `dvc repro validate`) first")
    return pd.read_parquet(path), read_json(validated_dir / VALIDATED_META)
