"""Running the validate stage's Great Expectations suites (GX 1.x API); their results as plain JSON.

One ephemeral context with a pandas data source; per suite (:class:`tsforecast.data.expectations.Suite`)
a dataframe asset with a whole-dataframe batch definition, an ExpectationSuite, a
ValidationDefinition and a Checkpoint; then one build of the Data Docs site, which shows every
suite and its results (one build, not one per checkpoint: the build is most of GX's time).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from tsforecast.data.expectations import Suite
from tsforecast.data.messages import SHOWN

SITE_NAME = "tsforecast"


def _gx_quiet() -> None:
    """No phoning home, no progress bars (set in the context config), INFO logs kept down."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX sets this module logger to INFO itself; the others inherit from "great_expectations"
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET, logging.INFO):
            logger.setLevel(logging.WARNING)


def expectation_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's row per expectation: its type, the column it concerns, the column GX checked
    (the series suite checks one number a series), success, details and message."""
    return [
        {
            "expectation": r["expectation"],
            "column": r["column"],
            "gx_column": r["gx_column"],
            "success": r["success"],
            "details": {**details(r["result"]), **({"message": r["message"]} if r.get("message") else {})},
        }
        for r in results
    ]


def run_checks(
    suites: list[Suite], docs_dir: Path, prefix: str = ""
) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`run_suites`, then a message on each result (None when it passed) and the failure lines.

    ``prefix`` (e.g. ``"data/raw/data.parquet: "``) starts a message GX itself could not evaluate.
    """
    results = run_suites(suites, docs_dir)
    lines = []
    checks = [check for suite in suites for check in suite.checks]
    for check, res in zip(checks, results, strict=True):
        res["message"] = None
        if not res["success"]:
            res["message"] = (
                f"{prefix}GX could not evaluate {res['expectation']}: {res['exception']}"
                if res["exception"]
                else check.explain(res["result"])
            )
            if res["message"]:
                lines.append(res["message"])
    return results, lines


def run_suites(suites: list[Suite], docs_dir: Path) -> list[dict[str, Any]]:
    """Run each suite through a GX checkpoint, then build one Data Docs site in ``docs_dir``.

    Returns one dict per check, in order: the expectation's type, column, success and result.
    """
    _gx_quiet()
    import great_expectations as gx
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
    source = context.data_sources.add_pandas("tsforecast")
    results = [result for suite in suites for result in _run_suite(context, source, suite)]
    context.build_data_docs(site_names=[SITE_NAME])  # every suite and result, one index
    from tsforecast.data.offline_docs import localize_data_docs

    localize_data_docs(docs_dir)  # the CDN assets shipped with the site: it works offline
    return results


def _run_suite(context: Any, source: Any, suite: Suite) -> list[dict[str, Any]]:
    """One suite through its own checkpoint (its frame is its batch)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("whole frame")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
    for check in suite.checks:
        gx_suite.add_expectation(check.expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate {suite.name}", data=batch, suite=gx_suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"validate {suite.name}",
            validation_definitions=[definition],
            actions=[],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SHOWN},
        )
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": suite.frame}, run_id=RunIdentifier(run_name="tsforecast-validate")
    )
    (suite_result,) = outcome.run_results.values()
    by_id = {r.expectation_config.id: r for r in suite_result.results}
    results = []
    for check in suite.checks:
        r = by_id[check.expectation.id]
        raised = bool(r.exception_info and r.exception_info.get("raised_exception"))
        results.append(
            {
                "expectation": r.expectation_config.type,
                "column": check.column,
                "gx_column": getattr(check.expectation, "column", None),
                "success": bool(r.success) and not raised,
                "result": dict(r.result or {}),
                "exception": r.exception_info.get("exception_message") if raised else None,
            }
        )
    return results


def plain(value: Any) -> Any:
    """JSON-friendly values: numpy scalars to Python, timestamps and non-finite floats to text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def details(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("observed_value", "element_count", "unexpected_count", "unexpected_percent", "missing_count")
    out = {k: result[k] for k in keys if k in result}
    if "partial_unexpected_list" in result:
        out["unexpected_values"] = result["partial_unexpected_list"][:SHOWN]
    if "partial_unexpected_index_list" in result:
        out["unexpected_rows"] = result["partial_unexpected_index_list"][:SHOWN]
    return plain(out)


__all__ = ["SITE_NAME", "details", "expectation_rows", "plain", "run_checks", "run_suites"]
