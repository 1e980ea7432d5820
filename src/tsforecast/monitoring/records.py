"""The decision log: ``forecasts/decisions/<data end>__<kind>__<written at>.json``, one file per record.

``tsforecast monitor`` writes a ``decision`` record each run (the decision, its reasons and
checks, the numbers behind them); after a decided retrain, ``tsforecast monitor --record-gate``
(the nightly flow, ``tsforecast replay``) writes a ``gate`` record: the version the retrain
registered and the gate's verdict, also when it kept the old champion. Records are written like
archive files (whole or not at all, never overwritten) and sit beside the archive, so they
survive ``dvc repro``, ``dvc checkout`` and ``make clean`` alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast.io import atomic_create

STAMP = "%Y%m%dT%H%M%S"


def record_name(kind: str, data_end: pd.Timestamp | None, written_at: pd.Timestamp) -> str:
    """``<data end>__<kind>__<written at, microseconds>.json``: sorts by data time, then by writing."""
    end = "none" if data_end is None else pd.Timestamp(data_end).strftime(STAMP)
    return f"{end}__{kind}__{written_at.strftime('%Y%m%dT%H%M%S%f')}.json"


def write_record(folder: Path, kind: str, payload: dict[str, Any], data_end: pd.Timestamp | None) -> Path:
    """Add one record (``kind``: ``decision`` or ``gate``); never replaces another."""
    for attempt in range(5):
        at = pd.Timestamp.now(tz="UTC") + pd.Timedelta(microseconds=attempt)
        target = folder / record_name(kind, data_end, at)
        body = {"kind": kind, "written_at": at.isoformat(), **payload}
        try:
            with atomic_create(target, "w") as fh:
                json.dump(body, fh, indent=2, default=str)
                fh.write("\n")
            return target
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: could not find a free record name for {kind} at {data_end}")


def read_records(folder: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every record (of ``kind``), oldest first; each with its ``file`` name."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if kind is None or body.get("kind") == kind:
            out.append({**body, "file": path.name})
    return out


def drift_episode_start(decisions: list[dict[str, Any]]) -> str | None:
    """The data end of the first of the latest run of decisions that all found drift (None: the
    latest decision found none): drift that was already acted on when it began."""
    start = None
    for record in reversed(decisions):
        if not (record.get("drift") or {}).get("drifted"):
            break
        start = record.get("data_end")
    return start


def last_challenge(decisions: list[dict[str, Any]]) -> str | None:
    """The data end of the latest decision to retrain: when the champion was last challenged."""
    for record in reversed(decisions):
        if (record.get("decision") or {}).get("retrain"):
            return record.get("data_end")
    return None


def gate_payload(
    registered: dict[str, Any] | None, decision: dict[str, Any] | None, ran: bool
) -> dict[str, Any]:
    """What a ``gate`` record holds (pure): the decision it answers and the register stage's verdict.

    ``ran``: whether the register stage ran for this retrain (DVC may find nothing new to train).
    """
    reg = registered or {}
    return {
        "decision_file": (decision or {}).get("file"),
        "decision_data_end": (decision or {}).get("data_end"),
        "retrain_ran": bool(ran),
        "version": reg.get("version"),
        "champion": bool(reg.get("champion")) if ran else False,
        "champion_version": reg.get("champion_version"),
        "previous_champion_version": reg.get("previous_champion_version"),
        "reason": reg.get("reason") if ran else "nothing was retrained: the training stages were up to date",
        "mse_scaled": reg.get("mse_scaled"),
        "champion_mse_scaled": reg.get("champion_mse_scaled"),
    }


__all__ = [
    "drift_episode_start",
    "gate_payload",
    "last_challenge",
    "read_records",
    "record_name",
    "write_record",
]
