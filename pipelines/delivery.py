"""Delivering forecasts: the table artifact of a forecast file, and the scratch root where the
``forecast-refresh`` deployment re-runs ingest, validate and forecast without touching DVC.

The refresh runs the same stage functions as the pipeline, through the same CLI
(``tsforecast <stage> --root .refresh``), against ``<checkout>/.refresh/``: its own params.yaml,
data/ folders and forecasts/, with copies of the model and the register stage's record.
Nothing DVC tracks in the checkout is written, so ``dvc status`` stays as it was.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.dvc_runner import CommandResult, Logger, StageFailed, check, run_command

#: The forecast stage's output (contract): timestamp, forecast, lo_<level>, hi_<level>.
FORECAST_PARQUET = "forecasts/forecast.parquet"
#: Prefect artifact key of the latest forecast table (nightly and refresh alike).
FORECAST_KEY = "forecast"
#: The refresh's scratch root, relative to the checkout (git-ignored).
REFRESH_DIR = ".refresh"
#: What the refresh re-runs: new data in, the current champion's forecast out, no training.
REFRESH_STAGES = ("ingest", "validate", "forecast")
#: What the forecast stage reads that the refreshed stages do not write: the local model
#: and the register stage's record of the champion (convention 4), copied from the checkout.
CARRIED = ("models", "reports/registered.json")
#: Local MLflow stores (the default sqlite:///<root>/mlflow.db), linked from the checkout.
LINKED = ("mlflow.db", "mlartifacts")
#: The archive of delivered forecasts (tsforecast.monitoring): the checkout's, linked, so a
#: refresh's delivery is archived with every other delivery.
ARCHIVE = "forecasts/archive"
#: The command a refresh stage runs; ``tsforecast <stage> --root <scratch>`` follows.
CLI = (sys.executable, "-m", "tsforecast")
EX_TEMPFAIL = 75  # the CLI's exit code for a transient fault (convention 8)
MAX_TABLE_ROWS = 2000


def read_forecast(path: Path) -> pd.DataFrame:
    """A forecast file; fails naming the missing columns of the contract."""
    frame = pd.read_parquet(path)
    missing = [c for c in ("timestamp", "forecast") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: column(s) {missing} not found; a forecast file has timestamp, forecast, "
            f"lo_<level>, hi_<level> (its columns are {list(frame.columns)})"
        )
    return frame


def table_rows(frame: pd.DataFrame, max_rows: int = MAX_TABLE_ROWS) -> list[dict[str, Any]]:
    """The first ``max_rows`` rows for a Prefect table artifact, timestamps as ISO text."""
    shown = frame.head(max_rows).copy()
    for column in shown.columns:
        if pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].map(lambda t: t.isoformat())
    return shown.to_dict(orient="records")


def forecast_summary(frame: pd.DataFrame, path: Path, root: Path) -> dict[str, Any]:
    """What the run report says about a published forecast file."""
    stamps = pd.to_datetime(frame["timestamp"])
    return {
        "path": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
        "rows": len(frame),
        "first": stamps.min().isoformat() if len(frame) else None,
        "last": stamps.max().isoformat() if len(frame) else None,
        "columns": [str(c) for c in frame.columns],
        "artifact_key": FORECAST_KEY,
    }


def _refresh_params(root: Path) -> str:
    """The checkout's params.yaml, with a relative data.path made absolute (it names a checkout file)."""
    params = yaml.safe_load((root / "params.yaml").read_text()) or {}
    data = params.get("data") or {}
    path = str(data.get("path", ""))
    if path and not path.startswith("builtin:") and not Path(path).is_absolute():
        params["data"] = {**data, "path": str((root / path).resolve())}
    return yaml.safe_dump(params, sort_keys=False)


def refresh_root(root: Path, name: str = REFRESH_DIR) -> Path:
    """Make ``<root>/<name>`` ready for a refresh: params.yaml, fresh copies of :data:`CARRIED`,
    links to the local MLflow stores. Its data/ and forecasts/ are its own, kept between runs."""
    scratch = root / name
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "params.yaml").write_text(_refresh_params(root))
    for rel in CARRIED:
        src, dst = root / rel, scratch / rel
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        else:
            dst.unlink(missing_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for rel in LINKED:
        link = scratch / rel
        if (root / rel).exists() and not link.is_symlink() and not link.exists():
            link.symlink_to(os.path.relpath(root / rel, scratch))
    _link_archive(root, scratch)
    return scratch


def _link_archive(root: Path, scratch: Path) -> None:
    """``<scratch>/forecasts/archive`` -> the checkout's archive (files a refresh root holds from
    before the link are moved over, never overwriting one)."""
    target, link = root / ARCHIVE, scratch / ARCHIVE
    target.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        return
    if link.is_dir():
        for f in link.glob("*.parquet"):
            if not (target / f.name).exists():
                shutil.move(str(f), target / f.name)
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def cli_stage(root: Path, stage: str, log: Logger) -> CommandResult:
    """``tsforecast <stage> --root <root>``, outside DVC; a failure raises StageFailed
    (transient for exit code 75 and for what the pipeline's stages would retry)."""
    result = run_command([*CLI, stage, "--root", str(root)], root, log)
    what = f"stage '{stage}' in {root}"
    if result.returncode == EX_TEMPFAIL:
        raise StageFailed(what, transient=True, returncode=EX_TEMPFAIL, error_lines=result.error_lines)
    return check(result, what)
