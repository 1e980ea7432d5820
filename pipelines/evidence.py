"""The nightly decision from the flows' side: ``tsforecast monitor`` through the CLI, its report.

Nothing here decides anything: ``tsforecast monitor`` (src/tsforecast/monitoring) scores the
archive, measures drift and writes the decision to ``metrics/monitor.json``; the flow reads it
back and runs the training stages only when it says so (pipelines/README.md, "Retraining on
evidence").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.delivery import CLI, EX_TEMPFAIL
from pipelines.dvc_runner import Logger, StageFailed, check, run_command

#: What ``tsforecast monitor`` writes (contract): the decision the nightly flow acts on.
MONITOR_JSON = "metrics/monitor.json"
#: Prefect artifact key of the night's monitoring report.
MONITOR_KEY = "monitor-report"


def _cli(root: Path, args: list[str], what: str, log: Logger) -> None:
    result = run_command([*CLI, "monitor", "--root", str(root), *args], root, log)
    if result.returncode == EX_TEMPFAIL:
        raise StageFailed(what, transient=True, returncode=EX_TEMPFAIL, error_lines=result.error_lines)
    check(result, what)


def monitor_cli(root: Path, data_dir: Path, log: Logger) -> dict[str, Any]:
    """``tsforecast monitor --root <checkout> --data <data_dir>``; returns metrics/monitor.json."""
    _cli(root, ["--data", str(data_dir)], f"tsforecast monitor in {root}", log)
    return json.loads((root / MONITOR_JSON).read_text())


def record_gate_cli(root: Path, log: Logger) -> dict[str, Any]:
    """``tsforecast monitor --record-gate``: the gate's verdict on tonight's retrain, recorded."""
    _cli(root, ["--record-gate"], f"tsforecast monitor --record-gate in {root}", log)
    decisions = sorted((root / "forecasts" / "decisions").glob("*__gate__*.json"))
    return json.loads(decisions[-1].read_text()) if decisions else {}


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4g}"


def monitor_markdown(report: dict[str, Any], gate: dict[str, Any] | None) -> str:
    """The night's report: the decision and its reasons, the realized error against the band, drift."""
    decision = report.get("decision") or {}
    champ = report.get("champion") or {}
    expected = report.get("expected") or {}
    drift = report.get("drift") or {}
    verdict = "retrain" if decision.get("retrain") else "keep the champion"
    lines = [
        f"# Nightly decision: {verdict}",
        "",
        *[f"- {r}" for r in decision.get("reasons", [])],
        "",
        "| | |",
        "|---|---|",
        f"| newest row | {report.get('data_end')} |",
        f"| champion | {champ.get('model_version')} ({champ.get('n_scored', 0)} forecasts scored) |",
        f"| realized mse_scaled (pooled) | {_num(champ.get('pooled_mse_scaled'))} |",
        f"| expected mse_scaled / upper | {_num(expected.get('mse_scaled'))} / {_num(expected.get('upper'))} |",
        "| drift (largest level, scale, profile) | "
        + ", ".join(_num(v) for v in (drift.get("largest") or {}).values())
        + " |",
        f"| archived forecasts / scored | {report.get('n_archived')} / {report.get('n_scored')} |",
    ]
    if gate is not None:
        lines += ["", f"**Gate after the retrain:** {gate.get('reason')}"]
    return "\n".join(lines) + "\n"


__all__ = ["MONITOR_JSON", "MONITOR_KEY", "monitor_cli", "monitor_markdown", "record_gate_cli"]
