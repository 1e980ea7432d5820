"""Running a Great Expectations suite (GX 1.x API) and turning its results into plain JSON.

Shared by the validate stage's one-series path (:mod:`tsforecast.data.validate`) and its panel
path (:mod:`tsforecast.data.panel_validate`): an ephemeral context, a pandas data source, a
whole-dataframe batch definition, an ExpectationSuite, a ValidationDefinition and a
Checkpoint with an UpdateDataDocsAction that builds the Data Docs site.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from tsforecast.data.expectations import SHOWN, Plan

SITE_NAME = "tsforecast"
SUITE_NAME = "raw_series"


def _gx_quiet() -> None:
    """No phoning home, no progress bars (set in the context config), INFO logs kept down."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX sets this module logger to INFO itself; the others inherit from "great_expectations"
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET, logging.INFO):
            logger.setLevel(logging.WARNING)


def expectation_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's row per expectation: its type, column, success, details and message."""
    return [
        {
            "expectation": r["expectation"],
            "column": r["column"],
            "success": r["success"],
            "details": {**details(r["result"]), **({"message": r["message"]} if r.get("message") else {})},
        }
        for r in results
    ]


def run_checks(plan: Plan, docs_dir: Path, prefix: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`run_suite`, then a message on each result (None when it passed) and the failure lines.

    ``prefix`` (e.g. ``"data/raw/data.parquet: "``) starts a message GX itself could not evaluate.
    """
    results = run_suite(plan, docs_dir)
    lines = []
    for check, res in zip(plan.checks, results, strict=True):
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
    from tsforecast.data.offline_docs import localize_data_docs

    localize_data_docs(docs_dir)  # the CDN assets shipped with the site: it works offline
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


__all__ = ["SITE_NAME", "SUITE_NAME", "details", "plain", "run_suite"]
