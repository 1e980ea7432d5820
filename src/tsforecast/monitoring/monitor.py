"""``tsforecast monitor``: score every delivered forecast against the newest data, measure drift,
decide whether to retrain, and record it all.

Reads the archive (``forecasts/archive/``), the newest validated data (``data/validated/``, or
``--data`` e.g. the nightly flow's ``.refresh/data/validated``), the training rows of the last
retrain (``data/prepared/``) and the champion's backtest; writes ``metrics/monitor.json``
(contract), ``metrics/monitor_by_series.parquet`` (per origin and series),
``metrics/monitor_drift.parquet`` (per series), ``plots/monitor.png``, one decision record
(``forecasts/decisions/``) and the realized accuracy to MLflow. It is no DVC stage: it judges a
growing archive against the newest rows, which is what decides whether the DVC stages of
training run at all (see docs/monitoring.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, EvaluateConfig, ForecastConfig, MonitorConfig, RegisterConfig
from tsforecast.dataset.long import id_column, with_series_id
from tsforecast.errors import DataError
from tsforecast.io import atomic_file, write_json
from tsforecast.monitoring import decision as rules
from tsforecast.monitoring import drift, realized
from tsforecast.monitoring.archive import archive_files, model_version_of, read_archive
from tsforecast.monitoring.expected import load_expected
from tsforecast.monitoring.mlflow_log import log_gate, log_monitoring
from tsforecast.monitoring.plots import plot_monitor
from tsforecast.monitoring.records import (
    drift_episode_start,
    gate_payload,
    last_challenge,
    read_records,
    write_record,
)
from tsforecast.monitoring.types import (
    DELIVERED_AT,
    FILE,
    MODEL_VERSION,
    MONITOR_JSON,
    MONITOR_PNG,
    MONITOR_SERIES,
    ORIGIN,
    Decision,
    Expected,
    archive_dir,
    decisions_dir,
    finite_or_none,
)
from tsforecast.paths import Paths

if TYPE_CHECKING:
    from tsforecast.dataset.panel import Panel

log = logging.getLogger(__name__)

DRIFT_SERIES = "monitor_drift.parquet"
#: monitor.json's ``expected`` when the champion has no backtest (the keys stay, the numbers are null)
NO_BAND = {"mse_scaled": None, "upper": None, "source": None, "note": "no backtest of the champion was found"}
REGISTERED_FILE = "registered.json"


@dataclass(frozen=True)
class MonitorResult:
    """The CLI's summary of one monitor run (monitor.json holds everything)."""

    n_archived: int
    n_scored: int
    champion: str | None
    realized_mse_scaled: float | None
    expected_upper: float | None
    drifted: bool
    retrain: bool
    reasons: list[str]
    output: str
    mlflow_run: str | None


@dataclass(frozen=True)
class Evidence:
    """What the decision is made from (the pure part's inputs and outputs)."""

    archive: pd.DataFrame
    by_series: pd.DataFrame
    origins: pd.DataFrame  # one row per scored delivery, with pooled_mse_scaled per model version
    champion: str | None
    expected: Expected | None
    drift_table: pd.DataFrame | None
    drift: dict[str, Any] | None
    data_end: pd.Timestamp
    age: pd.Timedelta | None
    decision: Decision


# ---------------------------------------------------------------------------- edges: reading


def _ns(values: pd.Series) -> pd.Series:
    out = pd.to_datetime(values)
    return out.dt.as_unit("ns")


def read_newest(data: DataConfig, folder: Path) -> pd.DataFrame:
    """The newest data as ``[id, timestamp, actual]``, sorted (one series gets the implicit id);
    its frequency (validate's) in ``.attrs["freq"]``."""
    from tsforecast.data.validate import read_validated

    frame, meta = read_validated(folder)
    idc = id_column(data)
    long = with_series_id(frame, data)
    out = long[[idc, data.timestamp_column, data.target]].rename(
        columns={data.timestamp_column: "timestamp", data.target: realized.ACTUAL}
    )
    out[idc] = out[idc].astype(str)
    out["timestamp"] = _ns(out["timestamp"])
    out = out.sort_values([idc, "timestamp"], kind="stable").reset_index(drop=True)
    out.attrs["freq"] = meta.get("freq")
    return out


def read_training(paths: Paths) -> Panel | None:
    """The panel of the last retrain (data/prepared/), None when there is none."""
    from tsforecast.dataset.panel import load_panel

    try:
        return load_panel(paths.prepared)
    except DataError:  # not built yet (or an older layout): drift is then not measured
        return None


def read_reference(paths: Paths) -> drift.Reference | None:
    """The training rows of the last retrain (data/prepared/), None when there is no panel there."""
    panel = read_training(paths)
    return drift.reference_from_panel(panel) if panel is not None else None


def resolve_period(setting: int | str, training: Panel | None, freq: str | None) -> int:
    """``evaluate.seasonal_period`` as a number: as set, or ``auto`` resolved as evaluate resolves it
    on the training panel (without one: the daily or natural period of the data's frequency)."""
    from tsforecast.dataset.auto import panel_period, period_candidates

    if setting != "auto":
        return int(setting)
    if training is not None:
        return panel_period(setting, training).value
    return period_candidates(freq)[0] if freq else 1


# ---------------------------------------------------------------------------- pure


def champion_of(archive: pd.DataFrame) -> str | None:
    """The model version of the latest delivery: the one delivering now."""
    if archive.empty:
        return None
    order = archive.sort_values([DELIVERED_AT, ORIGIN], na_position="first", kind="stable")
    return str(order[MODEL_VERSION].iloc[-1])


def fallback_champion(paths: Paths, registered: dict[str, Any] | None) -> str | None:
    """Who delivers when the archive is empty: the registered champion, else the local model."""
    if registered and registered.get("champion_version") is not None:
        return str(registered["champion_version"])
    model = paths.models / "model.pt"
    return model_version_of(str(model), paths) if model.is_file() else None


def with_pooled(origins: pd.DataFrame, recent: int) -> pd.DataFrame:
    """``origins`` plus ``pooled_mse_scaled``: each model version's rolling pooled error."""
    if origins.empty:
        return origins.assign(pooled_mse_scaled=pd.Series(dtype=float))
    pooled = pd.Series(np.nan, index=origins.index)
    for _, rows in origins.groupby(MODEL_VERSION, sort=False):
        pooled.loc[rows.index] = realized.rolling_pooled(rows, recent)
    return origins.assign(pooled_mse_scaled=pooled)


def gather(
    archive: pd.DataFrame,
    newest: pd.DataFrame,
    reference: drift.Reference | None,
    expected_for: Any,
    data: DataConfig,
    period: int,
    monitor: MonitorConfig,
    decisions: list[dict[str, Any]] | None = None,
    fallback: str | None = None,
) -> Evidence:
    """Score, measure, decide (pure but for ``expected_for(champion)``, the band's lookup); ``period``
    is the resolved seasonal period (MASE, the drift profile and its default window).

    ``decisions``: the earlier decision records (oldest first): a drift already acted on does not
    trigger again, and the champion's age counts from its last challenge. ``fallback``: the champion
    when nothing was archived yet (a model registered or trained before any delivery)."""
    idc = id_column(data)
    if archive.empty:
        by_series, origins = pd.DataFrame(), realized.by_origin(pd.DataFrame({"n": []}), [])
    else:
        archive = archive.assign(timestamp=_ns(archive["timestamp"]), **{ORIGIN: _ns(archive[ORIGIN])})
        by_series, origins = realized.score(archive, newest, idc, period)
    origins = with_pooled(origins, monitor.recent)
    champion = champion_of(archive) or fallback
    expected = expected_for(champion)
    mine = origins[origins[MODEL_VERSION].astype(str) == champion] if champion else origins.iloc[:0]
    data_end = pd.Timestamp(newest["timestamp"].max())
    first = archive.loc[archive[MODEL_VERSION].astype(str) == champion, ORIGIN].min() if champion else None
    challenged = last_challenge(decisions or [])
    if first is not None and pd.notna(first) and challenged is not None:
        first = max(pd.Timestamp(first), pd.Timestamp(challenged))
    age = data_end - pd.Timestamp(first) if first is not None and pd.notna(first) else None
    table, summary = None, {"note": "no training rows to compare with: data/prepared/ holds no panel"}
    if reference is not None:
        window = period if monitor.drift_window == "auto" else int(monitor.drift_window)
        limits = drift.Thresholds(monitor.drift_level, monitor.drift_scale, monitor.drift_profile)
        table = drift.drift_table(newest, idc, realized.ACTUAL, reference, window, period, limits)
        summary = {"window": window, **drift.summarize(table, idc, limits, monitor.drift_share)}
    checks = [
        rules.champion_check(champion),
        rules.realized_check(
            champion, mine["pooled_mse_scaled"].tolist(), expected, monitor.recent, monitor.patience
        ),
        rules.drift_check(summary, drift_episode_start(decisions or [])),
        rules.age_check(champion, age, monitor.max_age),
    ]
    return Evidence(
        archive, by_series, origins, champion, expected, table, summary, data_end, age, rules.decide(checks)
    )


def coverage_level(origins: pd.DataFrame, forecast: ForecastConfig) -> str | None:
    """The interval level reported as ``coverage``: the first of forecast.levels the archive holds."""
    held = [c.removeprefix("coverage_") for c in origins.columns if c.startswith("coverage_")]
    for lv in forecast.levels:
        if f"{float(lv):g}" in held:
            return f"{float(lv):g}"
    return held[0] if held else None


def origin_rows(origins: pd.DataFrame, level: str | None) -> list[dict[str, Any]]:
    """monitor.json's ``by_origin`` (contract keys first)."""
    rows = []
    for r in origins.to_dict("records"):
        rows.append(
            {
                "origin": pd.Timestamp(r[ORIGIN]).isoformat(),
                "model_version": str(r[MODEL_VERSION]),
                "steps_observed": int(r["steps_observed"]),
                "mae": finite_or_none(r["mae"]),
                "mse_scaled": finite_or_none(r["mse_scaled"]),
                "coverage": finite_or_none(r.get(f"coverage_{level}")) if level else None,
                "coverage_level": level,
                "horizon": int(r["horizon"]),
                "complete": bool(r["complete"]),
                "mse": finite_or_none(r["mse"]),
                "mase": finite_or_none(r["mase"]),
                "pooled_mse_scaled": finite_or_none(r["pooled_mse_scaled"]),
                "n_series": int(r["n_series"]),
                "delivered_at": None
                if pd.isna(r[DELIVERED_AT])
                else pd.Timestamp(r[DELIVERED_AT]).isoformat(),
                "file": r[FILE],
            }
        )
    return rows


def build_report(
    ev: Evidence, level: str | None, n_files: int, unreadable: list[str], newest_from: str
) -> dict[str, Any]:
    """monitor.json (contract keys first)."""
    mine = (
        ev.origins[ev.origins[MODEL_VERSION].astype(str) == ev.champion]
        if ev.champion
        else ev.origins.iloc[:0]
    )
    last = mine.tail(1)
    return {
        "n_scored": int(len(ev.origins)),
        "by_origin": origin_rows(ev.origins, level),
        "expected": ev.expected.to_dict() if ev.expected else NO_BAND,
        "drift": ev.drift,
        "decision": ev.decision.to_dict(),
        "n_archived": n_files,
        "unreadable": unreadable,
        "data_end": ev.data_end.isoformat(),
        "data": newest_from,
        "coverage_level": level,
        "champion": {
            "model_version": ev.champion,
            "age_days": None if ev.age is None else ev.age / pd.Timedelta(days=1),
            "n_scored": int(len(mine)),
            "latest_origin": None if last.empty else pd.Timestamp(last[ORIGIN].iloc[0]).isoformat(),
            "latest_mse_scaled": None if last.empty else finite_or_none(last["mse_scaled"].iloc[0]),
            "pooled_mse_scaled": None if last.empty else finite_or_none(last["pooled_mse_scaled"].iloc[0]),
        },
        "mlflow": None,
    }


# ---------------------------------------------------------------------------- the command


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_file(path, "wb") as fh:
        frame.to_parquet(fh, index=False)


def _series_detail(by_series: pd.DataFrame, idc: str) -> pd.DataFrame:
    keep = [idc, ORIGIN, MODEL_VERSION, FILE, "steps_observed", "horizon", "mae", "mse", "mse_scaled", "mase"]
    if by_series.empty:
        return pd.DataFrame(columns=keep)
    cov = [c for c in by_series.columns if c.startswith("coverage_")]
    return by_series[[*keep, *cov]]


def _registered(paths: Paths) -> dict[str, Any] | None:
    from tsforecast.registry.tracking import registered_here

    return registered_here(paths)  # another store's record (a clone, a copy) counts as none


def run_monitor(
    data: DataConfig,
    evaluate: EvaluateConfig,
    forecast: ForecastConfig,
    monitor: MonitorConfig,
    register: RegisterConfig,
    paths: Paths,
    *,
    data_dir: Path | None = None,
    track: bool = True,
) -> MonitorResult:
    """Score the archive against the newest data, measure drift, decide, write and log it all."""
    folder = Path(data_dir) if data_dir is not None else paths.validated
    newest = read_newest(data, folder)  # edge: reads
    archive, unreadable = read_archive(archive_dir(paths), data)
    training = read_training(paths)
    reference = drift.reference_from_panel(training) if training is not None else None
    period = resolve_period(evaluate.seasonal_period, training, newest.attrs.get("freq"))
    registered = _registered(paths)

    def expected_for(champion: str | None) -> Expected | None:
        return load_expected(paths, champion, registered, register.model_name, monitor.band)

    decisions = read_records(decisions_dir(paths), "decision")
    fallback = fallback_champion(paths, registered)
    ev = gather(archive, newest, reference, expected_for, data, period, monitor, decisions, fallback)  # pure
    level = coverage_level(ev.origins, forecast)
    shown = str(folder.relative_to(paths.root)) if folder.is_relative_to(paths.root) else str(folder)
    report = build_report(ev, level, len(archive_files(archive_dir(paths))), unreadable, shown)
    idc = id_column(data)
    _write_parquet(paths.metrics / MONITOR_SERIES, _series_detail(ev.by_series, idc))  # edge: writes
    if ev.drift_table is not None:
        _write_parquet(paths.metrics / DRIFT_SERIES, ev.drift_table)
    plot_monitor(ev.origins, ev.champion, ev.expected, level, paths.plots / MONITOR_PNG)
    record = write_record(decisions_dir(paths), "decision", _decision_payload(report), ev.data_end)
    if track:
        report["mlflow"] = _track(paths, monitor, register, ev.origins, report, record)
    write_json(paths.metrics / MONITOR_JSON, report)
    champ = report["champion"]
    log.info("monitor: %s", "; ".join(ev.decision.reasons))
    return MonitorResult(
        n_archived=report["n_archived"],
        n_scored=report["n_scored"],
        champion=ev.champion,
        realized_mse_scaled=champ["pooled_mse_scaled"],
        expected_upper=ev.expected.upper if ev.expected else None,
        drifted=bool((ev.drift or {}).get("drifted")),
        retrain=ev.decision.retrain,
        reasons=list(ev.decision.reasons),
        output=str((paths.metrics / MONITOR_JSON).relative_to(paths.root)),
        mlflow_run=(report["mlflow"] or {}).get("champion_run"),
    )


def _decision_payload(report: dict[str, Any]) -> dict[str, Any]:
    champ = report["champion"]
    return {
        "data_end": report["data_end"],
        "champion": champ["model_version"],
        "decision": report["decision"],
        "realized_mse_scaled": champ["pooled_mse_scaled"],
        "expected": report["expected"],
        "drift": {k: v for k, v in (report["drift"] or {}).items() if k != "series"},
        "n_scored": report["n_scored"],
    }


def _track(paths: Paths, monitor: MonitorConfig, register: RegisterConfig, origins: pd.DataFrame,
           report: dict[str, Any], record: Path) -> dict[str, Any]:  # fmt: skip
    """Log to MLflow; a store that cannot be reached is reported, not fatal (the decision stands)."""
    try:
        return log_monitoring(
            paths, monitor, register, origins, report, archive_files(archive_dir(paths)), record
        )
    except Exception as e:  # noqa: BLE001 - the next run logs what this one could not
        log.warning("could not log the realized accuracy to MLflow: %s", str(e)[:300])
        return {"error": str(e)[:500]}


def record_gate(
    register: RegisterConfig, monitor: MonitorConfig, paths: Paths, *, track: bool = True
) -> dict[str, Any]:
    """After a decided retrain: record the gate's verdict (reports/registered.json) beside the decision.

    When registered.json is older than the latest decision, the register stage did not run for
    this retrain (DVC found the training stages up to date): the record says so.
    """
    decisions = read_records(decisions_dir(paths), "decision")
    latest = decisions[-1] if decisions else None
    reg_path = paths.reports / REGISTERED_FILE
    registered = _registered(paths)
    ran = registered is not None and (
        latest is None
        or pd.Timestamp(reg_path.stat().st_mtime, unit="s", tz="UTC") >= pd.Timestamp(latest["written_at"])
    )
    payload = gate_payload(registered, latest, ran)
    data_end = pd.Timestamp(latest["data_end"]) if latest and latest.get("data_end") else None
    path = write_record(decisions_dir(paths), "gate", payload, data_end)
    if track and latest and latest.get("champion"):
        _track_gate(paths, monitor, register, str(latest["champion"]), payload, path, data_end)
    log.info("gate after the retrain: %s", payload["reason"])
    return {**payload, "record": str(path.relative_to(paths.root))}


def _track_gate(paths: Paths, monitor: MonitorConfig, register: RegisterConfig, champion: str,
                payload: dict[str, Any], path: Path, data_end: pd.Timestamp | None) -> None:  # fmt: skip
    try:
        log_gate(paths, monitor, register, champion, payload, path, data_end)
    except Exception as e:  # noqa: BLE001 - the local record stands
        log.warning("could not log the gate's verdict to MLflow: %s", str(e)[:300])


__all__ = ["Evidence", "MonitorResult", "gather", "read_newest", "record_gate", "run_monitor"]
