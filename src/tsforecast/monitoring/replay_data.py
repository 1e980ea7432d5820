"""The replay's workspace: held-back rows, the scratch root, its params and its MLflow store.

The user's data is read as the ingest stage reads it (``data.path``), every series loses its
last ``rounds x horizon`` rows, and the replay writes the rows it has fed so far to
``<scratch>/data/external/replay.parquet``, the scratch params' ``data.path``. The scratch root
(``.replay/<started at>/`` in the checkout by default) has its own params.yaml, data/, models/,
metrics/, forecasts/archive/ and sqlite MLflow store, so the user's outputs, registry and
archive are never touched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tsforecast.config import Config, DataConfig, load_config
from tsforecast.dataset.long import id_column, with_series_id, without_series_id
from tsforecast.errors import ConfigError, DataError
from tsforecast.io import atomic_file
from tsforecast.monitoring.types import REPLAY_DIR
from tsforecast.paths import Paths

DATA_FILE = "data/external/replay.parquet"
CLEARED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DVC_EXP_NAME")


def read_history(data: DataConfig, paths: Paths) -> pd.DataFrame:
    """The user's data as the ingest stage reads it, as a long frame sorted by series and time."""
    from tsforecast.data.ingest import read_source

    frame, _, _ = read_source(data, paths.root)
    long = with_series_id(frame, data)
    return long.sort_values([id_column(data), data.timestamp_column], kind="stable").reset_index(drop=True)


def hold_back(
    long: pd.DataFrame, data: DataConfig, rounds: int, horizon: int
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """(the rows every series starts with, the ``horizon`` rows per series fed in each round) (pure)."""
    idc = id_column(data)
    held = rounds * horizon
    sizes = long.groupby(idc, sort=False, observed=True).size()
    short = sizes[sizes <= held]
    if len(short):
        names = ", ".join(map(str, short.index[:10]))
        raise DataError(
            f"replay --rounds {rounds} holds back {held} rows (rounds x window.horizon={horizon}) of every "
            f"series, but {len(short)} series have no more rows than that: {names}; use fewer rounds"
        )
    from_end = long.groupby(idc, sort=False, observed=True).cumcount(ascending=False)  # 0 = the last row
    start = long[from_end >= held]
    fed = [
        long[(from_end < held - r * horizon) & (from_end >= held - (r + 1) * horizon)] for r in range(rounds)
    ]
    return start, fed


def with_shift(fed: list[pd.DataFrame], target: str, shift: float, from_round: int) -> list[pd.DataFrame]:
    """Multiply the target of rounds ``from_round``.. by ``1 + shift`` (a level change of ``shift``)."""
    if not shift:
        return fed
    return [
        f.assign(**{target: f[target] * (1.0 + shift)}) if r + 1 >= from_round else f
        for r, f in enumerate(fed)
    ]


def scratch_root(paths: Paths, scratch: Path | None = None) -> Path:
    """A new, empty scratch root: ``scratch`` or ``<checkout>/.replay/<now>``."""
    root = (
        Path(scratch)
        if scratch is not None
        else paths.root / REPLAY_DIR / pd.Timestamp.now().strftime("%Y%m%dT%H%M%S")
    )
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not empty; a replay starts in an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=5", "monitor.patience=1"]`` -> ``{"train.epochs": 5, ...}`` (values as YAML)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-S {item!r}: expected KEY=VALUE such as train.epochs=5")
        out[key.strip()] = yaml.safe_load(value)
    return out


def scratch_config(paths: Paths, root: Path, overrides: dict[str, Any]) -> Config:
    """The user's params with ``overrides`` and ``data.path`` = the replay's file, written to ``root``."""
    cfg = load_config(paths.params, overrides=overrides)
    raw = cfg.model_dump(mode="json")
    raw["data"]["path"] = DATA_FILE
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(root / "params.yaml")


def write_rows(root: Path, data: DataConfig, parts: list[pd.DataFrame]) -> int:
    """Write the rows fed so far as the scratch's data file (atomically); returns the row count."""
    frame = without_series_id(pd.concat(parts, ignore_index=True), data)
    path = root / DATA_FILE
    with atomic_file(path, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return len(frame)


@contextlib.contextmanager
def isolated(root: Path) -> Iterator[None]:
    """MLflow points at the scratch's own sqlite store (and no ``dvc exp`` name) for the block."""
    saved = {k: os.environ.get(k) for k in CLEARED_ENV}
    for k in CLEARED_ENV:
        os.environ.pop(k, None)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


__all__ = [
    "DATA_FILE",
    "hold_back",
    "isolated",
    "parse_overrides",
    "read_history",
    "scratch_config",
    "scratch_root",
    "with_shift",
    "write_rows",
]
