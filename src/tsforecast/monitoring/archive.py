"""The archive of every delivered forecast: ``forecasts/archive/<origin>__<model>__<digest>.parquet``.

Each delivery (the forecast stage under ``dvc repro``, the nightly and refresh deployments,
``tsforecast replay``) leaves one file: forecast.parquet's columns plus ``origin`` (each series'
last observed timestamp), ``model_version``, ``delivered_at`` and the model's train-fit scaler of
the series (``train_mean``, ``train_std``: what ``mse_scaled`` is measured on), so the realized
accuracy can be recomputed from the archive and the data alone.

A file is never overwritten or deleted by a later run: it is written to a hidden temp file
and hard-linked into place (:func:`tsforecast.io.atomic_create`), so it appears whole or not
at all, also when the writer is killed. A delivery identical to an archived one (same origin,
model and numbers: the name carries a digest of them) is not stored twice. The folder is no
DVC output (``dvc repro`` and ``dvc checkout`` leave it alone) and ``make clean`` keeps it;
:func:`prune` is the only deletion, and only on request (``tsforecast archive prune``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig
from tsforecast.dataset.long import id_column, with_series_id, without_series_id
from tsforecast.io import atomic_create
from tsforecast.monitoring.types import (
    DELIVERED_AT,
    FILE,
    LOCAL_PREFIX,
    MODEL_VERSION,
    ORIGIN,
    TRAIN_MEAN,
    TRAIN_STD,
    archive_dir,
)
from tsforecast.paths import Paths

log = logging.getLogger(__name__)

STAMP = "%Y%m%dT%H%M%S"
STALE_TEMP_S = 3600.0  # a writer holds its temp file for milliseconds; older ones were killed
_NAME = re.compile(r"^(?P<origin>\d{8}T\d{6})__(?P<model>[A-Za-z0-9.-]+)__(?P<digest>[0-9a-f]+)\.parquet$")


def model_version_of(model: str, paths: Paths) -> str:
    """``models:/<name>/3`` -> ``"3"``; a local model file -> ``"local-<sha256 of the file>[:12]"``."""
    if model.startswith("models:/"):
        return model.rstrip("/").rsplit("/", 1)[-1]
    path = Path(model) if Path(model).is_absolute() else paths.root / model
    if not path.is_file():
        return f"{LOCAL_PREFIX}unknown"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{LOCAL_PREFIX}{digest[:12]}"


def _scalers(extra: Mapping[str, Any]) -> tuple[pd.Series, pd.Series]:
    """Each series' target mean and std from the model card (``series_scalers``), by id."""
    sc = extra.get("series_scalers") or {}
    ids = pd.Index([str(i) for i in sc.get("ids", [])], dtype=object)
    mean = [float(row[0]) for row in sc.get("mean", [])]
    std = [float(row[0]) for row in sc.get("std", [])]
    if len(ids) != len(mean) or len(ids) != len(std):
        return pd.Series(dtype=float), pd.Series(dtype=float)
    return pd.Series(mean, index=ids), pd.Series(std, index=ids)


def archive_frame(
    out: pd.DataFrame,
    history: pd.DataFrame,
    data: DataConfig,
    model_version: str,
    extra: Mapping[str, Any],
    delivered_at: pd.Timestamp,
) -> pd.DataFrame:
    """The archive rows of one delivery (pure): ``out``'s columns, then origin, model_version,
    delivered_at, train_mean, train_std; one series keeps no id column (as forecast.parquet)."""
    idc = id_column(data)
    hist = with_series_id(history, data)
    long_out = with_series_id(out, data)
    keys = long_out[idc].astype(str)
    origins = hist.groupby(hist[idc].astype(str), sort=False)[data.timestamp_column].max()
    mean, std = _scalers(extra)
    frame = long_out.assign(
        **{
            ORIGIN: keys.map(origins).to_numpy(),
            MODEL_VERSION: str(model_version),
            DELIVERED_AT: delivered_at,
            TRAIN_MEAN: keys.map(mean).astype(float).to_numpy(),
            TRAIN_STD: keys.map(std).astype(float).to_numpy(),
        }
    )
    return without_series_id(frame, data).reset_index(drop=True)


def digest(frame: pd.DataFrame) -> str:
    """A short hash of a delivery's content (its rows without ``delivered_at``)."""
    content = frame.drop(columns=[DELIVERED_AT], errors="ignore")
    hashed = pd.util.hash_pandas_object(content, index=False).to_numpy()
    head = ",".join(map(str, content.columns)).encode()
    return hashlib.sha256(head + hashed.tobytes()).hexdigest()[:12]


def file_name(frame: pd.DataFrame) -> str:
    """``<latest origin>__<model version>__<digest>.parquet``: sorts by origin (UTC for a
    time-zone-aware series), names the model."""
    origin = pd.Timestamp(frame[ORIGIN].max())
    if origin.tzinfo is not None:
        origin = origin.tz_convert("UTC").tz_localize(None)
    model = re.sub(r"[^A-Za-z0-9.-]+", "-", str(frame[MODEL_VERSION].iloc[0])) or "unknown"
    return f"{origin.strftime(STAMP)}__{model}__{digest(frame)}.parquet"


def sweep_temps(folder: Path, older_than_s: float = STALE_TEMP_S) -> list[Path]:
    """Remove the hidden temp files of writers killed long ago; returns what was removed."""
    removed = []
    cutoff = time.time() - older_than_s
    for tmp in folder.glob(".*.tmp-*"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def write(frame: pd.DataFrame, folder: Path) -> tuple[Path, bool]:
    """Add one delivery to the archive folder; (its file, False when the same delivery was there)."""
    if frame.empty:
        raise ValueError("an empty forecast is not a delivery; nothing to archive")
    folder.mkdir(parents=True, exist_ok=True)
    sweep_temps(folder)
    target = folder / file_name(frame)
    if target.exists():
        return target, False
    try:
        with atomic_create(target) as fh:
            frame.to_parquet(fh, index=False)
    except FileExistsError:  # the same delivery, archived by a concurrent writer
        return target, False
    return target, True


def archive_forecast(
    out: pd.DataFrame,
    history: pd.DataFrame,
    data: DataConfig,
    model: str,
    extra: Mapping[str, Any],
    paths: Paths,
) -> Path:
    """Keep a delivered forecast: the one call the forecast stage makes after writing its file.

    ``out``: the delivered frame (forecast.parquet's rows); ``history``: the data it was made
    from (each series' last timestamp is its origin); ``model``: the ``models:/`` URI or the local
    model file that made it; ``extra``: that model's card (its train-fit scalers).
    """
    frame = archive_frame(
        out, history, data, model_version_of(model, paths), extra, pd.Timestamp.now(tz="UTC")
    )
    path, new = write(frame, archive_dir(paths))
    shown = path.relative_to(paths.root) if path.is_relative_to(paths.root) else path
    log.info("%s %s", "archived the forecast as" if new else "this forecast is already archived:", shown)
    return path


# ---------------------------------------------------------------------------- reading, pruning


def archive_files(folder: Path) -> list[Path]:
    """The archive's files, oldest origin first (hidden temp files are not files of the archive)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def origin_of_name(path: Path) -> pd.Timestamp | None:
    """The origin in an archive file's name (None: not an archive name)."""
    m = _NAME.match(path.name)
    return pd.to_datetime(m.group("origin"), format=STAMP) if m else None


def read_archive(folder: Path, data: DataConfig) -> tuple[pd.DataFrame, list[str]]:
    """Every archived row as one long frame (implicit id added, ``file`` column), and the names of
    files that could not be read (reported, never deleted)."""
    frames, bad = [], []
    idc = id_column(data)
    for path in archive_files(folder):
        try:
            frame = pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - a foreign or damaged file: name it, go on
            log.warning("%s is not a readable archive file (%s); it is skipped", path, str(e)[:200])
            bad.append(path.name)
            continue
        missing = [c for c in ("timestamp", "forecast", ORIGIN, MODEL_VERSION) if c not in frame.columns]
        if missing:
            log.warning("%s lacks the archive columns %s; it is skipped", path, missing)
            bad.append(path.name)
            continue
        frames.append(with_series_id(frame, data).assign(**{FILE: path.name}))
    if not frames:
        return pd.DataFrame(columns=[idc, "timestamp", "forecast", ORIGIN, MODEL_VERSION, FILE]), bad
    out = pd.concat(frames, ignore_index=True)
    out[idc] = out[idc].astype(str)
    for col in (TRAIN_MEAN, TRAIN_STD):
        if col not in out.columns:
            out[col] = np.nan
    if DELIVERED_AT not in out.columns:
        out[DELIVERED_AT] = pd.NaT
    return out, bad


def prune(folder: Path, before: pd.Timestamp, dry_run: bool = False) -> list[Path]:
    """Delete archive files whose origin (in the name) is before ``before``: the archive's only
    deletion, by a person's request. Returns the files (to be) removed."""
    cutoff = pd.Timestamp(before)
    if cutoff.tzinfo is not None:
        cutoff = cutoff.tz_convert("UTC").tz_localize(None)
    gone = [p for p in archive_files(folder) if (o := origin_of_name(p)) is not None and o < cutoff]
    if not dry_run:
        for p in gone:
            p.unlink(missing_ok=True)
    return gone


__all__ = [
    "archive_files",
    "archive_forecast",
    "archive_frame",
    "digest",
    "file_name",
    "model_version_of",
    "origin_of_name",
    "prune",
    "read_archive",
    "sweep_temps",
    "write",
]
