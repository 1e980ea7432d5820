"""``tsforecast replay --rounds N``: what the nightly deployment would have done on your own history.

Every series' last ``N x window.horizon`` rows are held back; the rest train the first champion
(the whole pipeline once, in a scratch root: see :mod:`~tsforecast.monitoring.replay_data`).
Then each round feeds ``horizon`` more rows per series and runs the nightly logic in this
process, with the same stage functions the deployment runs:

    ingest -> validate -> monitor (score the archive, drift, decision)
           -> [retrain: window -> train -> evaluate -> backtest -> register (the gate) -> record]
           -> forecast (with the champion; archived)

and writes ``reports/replay.json`` (contract) and ``plots/replay.png`` in the checkout after every
round (so a killed replay leaves the rounds it finished). Nothing else of the checkout is
touched: stages, archive, registry and decision log of the replay live in its scratch root.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tsforecast import stages
from tsforecast.config import Config
from tsforecast.dataset.long import id_column
from tsforecast.errors import ConfigError
from tsforecast.io import read_json, write_json
from tsforecast.monitoring import replay_data as ws
from tsforecast.monitoring.archive import archive_files, read_archive
from tsforecast.monitoring.monitor import record_gate, run_monitor
from tsforecast.monitoring.plots import plot_replay
from tsforecast.monitoring.types import MODEL_VERSION, MONITOR_JSON, REPLAY_JSON, REPLAY_PNG, archive_dir
from tsforecast.paths import Paths

log = logging.getLogger(__name__)

BOOTSTRAP = ("ingest", "validate", "window", "train", "evaluate", "backtest", "register", "forecast")
NEW_ROWS = ("ingest", "validate")
RETRAIN = ("window", "train", "evaluate", "backtest", "register")


@dataclass(frozen=True)
class ReplayResult:
    """The CLI's summary; reports/replay.json holds every round."""

    rounds: int
    retrains: int
    accepted: int
    champion_version: int | None
    seconds: float
    scratch: str
    output: str


def run_stages(names: tuple[str, ...], cfg: Config, paths: Paths) -> None:
    """The stage functions, in-process, as their CLI subcommands run them."""
    for name in names:
        log.info("replay: stage %s", name)
        stages.run_stage(name, cfg, paths)


def _registered(paths: Paths) -> dict[str, Any]:
    path = paths.reports / "registered.json"
    return read_json(path) if path.is_file() else {}


def _delivered_by(cfg: Config, paths: Paths) -> str | None:
    """The model version of the newest archive file (what forecast this round)."""
    files = archive_files(archive_dir(paths))
    if not files:
        return None
    frame, _ = read_archive(archive_dir(paths), cfg.data)
    latest = frame[frame["file"] == max(files, key=lambda p: p.stat().st_mtime).name]
    return str(latest[MODEL_VERSION].iloc[0]) if len(latest) else None


def round_record(
    r: int,
    rows_added: int,
    report: dict[str, Any],
    gate: dict[str, Any] | None,
    reg: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """One entry of replay.json's ``rounds`` (contract keys first)."""
    champ = report.get("champion") or {}
    expected = report.get("expected") or {}
    drift = report.get("drift") or {}
    return {
        "round": r,
        "origin": report.get("data_end"),
        "rows_added": rows_added,
        "realized_mse_scaled": champ.get("pooled_mse_scaled"),
        "expected_upper": expected.get("upper"),
        "decision": {"retrain": report["decision"]["retrain"], "reasons": report["decision"]["reasons"]},
        "champion_version": reg.get("champion_version"),
        "latest_mse_scaled": champ.get("latest_mse_scaled"),
        "latest_origin": champ.get("latest_origin"),
        "expected_mse_scaled": expected.get("mse_scaled"),
        "drift": {k: drift.get(k) for k in ("largest", "thresholds", "drifted", "share_drifted", "window")},
        "scored_model": champ.get("model_version"),
        "retrained": bool(gate and gate.get("retrain_ran")),
        "gate": None
        if gate is None
        else {k: gate.get(k) for k in ("version", "champion", "reason", "retrain_ran")},
        "seconds": round(seconds, 1),
    }


def _write_report(paths: Paths, body: dict[str, Any]) -> None:
    write_json(paths.reports / REPLAY_JSON, body)
    plot_replay(body["rounds"], paths.plots / REPLAY_PNG)


def _bootstrap(cfg: Config, sp: Paths) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_stages(BOOTSTRAP, cfg, sp)
    reg = _registered(sp)
    newest = pd.read_parquet(sp.root / ws.DATA_FILE, columns=[cfg.data.timestamp_column])
    return {
        "origin": pd.Timestamp(newest[cfg.data.timestamp_column].max()).isoformat(),
        "champion_version": reg.get("champion_version"),
        "reason": reg.get("reason"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_replay(
    cfg: Config,
    paths: Paths,
    rounds: int,
    *,
    epochs: int | None = None,
    overrides: dict[str, Any] | None = None,
    shift: float = 0.0,
    shift_round: int = 1,
    scratch: Path | None = None,
) -> ReplayResult:
    """Hold back ``rounds x horizon`` rows per series, then replay them round by round (module doc).

    ``epochs`` (or ``overrides``, dotted keys as ``-S``) change the replay's params only, e.g. to
    keep retrain rounds short; ``shift`` multiplies the target of the rows fed from round
    ``shift_round`` on by ``1 + shift`` (a level change to watch being caught).
    """
    if rounds < 1:
        raise ConfigError(f"replay --rounds {rounds}: expected a positive number of rounds")
    t_start = time.perf_counter()
    over = {**(overrides or {}), **({"train.epochs": int(epochs)} if epochs else {})}
    root = ws.scratch_root(paths, scratch)
    scfg = ws.scratch_config(paths, root, over)
    sp = Paths.from_root(root)
    horizon = scfg.window.horizon
    start, fed = ws.hold_back(ws.read_history(cfg.data, paths), scfg.data, rounds, horizon)
    fed = ws.with_shift(fed, scfg.data.target, shift, shift_round)
    n_series = int(start[id_column(scfg.data)].nunique())
    body: dict[str, Any] = {
        "rounds": [],
        "settings": {
            "rounds": rounds,
            "horizon": horizon,
            "held_back_rows": rounds * horizon,
            "n_series": n_series,
            "data": cfg.data.path,
            "overrides": over,
            "shift": shift,
            "shift_round": shift_round,
        },  # fmt: skip
        "scratch": str(root),
        "finished": False,
    }
    log.info("replay: %d rounds of %d rows per series, scratch %s", rounds, horizon, root)
    with ws.isolated(root):
        ws.write_rows(root, scfg.data, [start])
        body["bootstrap"] = _bootstrap(scfg, sp)
        _write_report(paths, body)
        for r in range(1, rounds + 1):
            t0 = time.perf_counter()
            ws.write_rows(root, scfg.data, [start, *fed[:r]])
            run_stages(NEW_ROWS, scfg, sp)
            mon = run_monitor(scfg.data, scfg.evaluate, scfg.forecast, scfg.monitor, scfg.register, sp)
            gate = None
            if mon.retrain:
                run_stages(RETRAIN, scfg, sp)
                gate = record_gate(scfg.register, scfg.monitor, sp)
            run_stages(("forecast",), scfg, sp)
            report = read_json(sp.metrics / MONITOR_JSON)
            entry = round_record(r, len(fed[r - 1]), report, gate, _registered(sp), time.perf_counter() - t0)
            entry["forecast_model"] = _delivered_by(scfg, sp)
            body["rounds"].append(entry)
            body["seconds"] = round(time.perf_counter() - t_start, 1)
            _write_report(paths, body)
            log.info("replay round %d/%d: %s", r, rounds, "; ".join(entry["decision"]["reasons"]))
    body["finished"] = True
    body["seconds"] = round(time.perf_counter() - t_start, 1)
    done = body["rounds"]
    body["summary"] = {
        "retrains": sum(x["retrained"] for x in done),
        "decided_retrain": sum(x["decision"]["retrain"] for x in done),
        "accepted": sum(bool((x["gate"] or {}).get("champion")) for x in done),
        "champion_versions": [x["champion_version"] for x in done],
    }
    _write_report(paths, body)
    return ReplayResult(
        rounds=rounds,
        retrains=body["summary"]["retrains"],
        accepted=body["summary"]["accepted"],
        champion_version=done[-1]["champion_version"] if done else body["bootstrap"]["champion_version"],
        seconds=body["seconds"],
        scratch=str(root),
        output=str((paths.reports / REPLAY_JSON).relative_to(paths.root)),
    )


__all__ = ["BOOTSTRAP", "NEW_ROWS", "RETRAIN", "ReplayResult", "round_record", "run_replay", "run_stages"]
