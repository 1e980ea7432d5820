"""Small real inputs for the monitoring tests: series, validated folders, panels, archives.

Nothing is trained: an archived "forecast" is the actual series plus known errors, so every
realized number has a value the test can write down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tsforecast.config import Config, config_from_dict
from tsforecast.dataset.panel import build_panel, save_panel
from tsforecast.io import write_json
from tsforecast.monitoring.archive import archive_frame, write
from tsforecast.monitoring.types import archive_dir
from tsforecast.paths import VALIDATED_FILE, VALIDATED_META, Paths

H, PERIOD, INPUT = 6, 24, 24
ID = "sid"


def cfg_for(n_series: int, **over: object) -> Config:
    """Hourly data, L=24, H=6, period 24; a panel (id column ``sid``) when ``n_series > 1``."""
    raw: dict[str, dict] = {
        "data": {"path": "data/external/series.csv", "target": "y", "timestamp_column": "timestamp",
                 "id_column": ID if n_series > 1 else None},
        "split": {"train": 0.7, "val": 0.1, "test": 0.2, "lookback": True},
        "window": {"input_size": INPUT, "horizon": H},
        "evaluate": {"seasonal_period": PERIOD},
    }  # fmt: skip
    for dotted, value in over.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return config_from_dict(raw)


def series_frame(n_series: int = 1, n: int = 480, seed: int = 0, level: float = 50.0) -> pd.DataFrame:
    """Hourly sines (period 24) with noise; the id column only for a panel (as the data on disk)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    parts = []
    for s in range(n_series):
        y = level + 10 * s + 10 * np.sin(2 * np.pi * t / PERIOD + s) + rng.normal(0, 0.5, n)
        part = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="h"), "y": y})
        if n_series > 1:
            part.insert(0, ID, f"s{s}")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def write_validated(folder: Path, frame: pd.DataFrame) -> None:
    """A data/validated/ folder as the validate stage leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / VALIDATED_FILE, index=False)
    write_json(folder / VALIDATED_META, {"freq": "h", "n_rows": len(frame)})


def write_prepared(paths: Paths, cfg: Config, frame: pd.DataFrame) -> None:
    """data/prepared/ as the window stage builds it (a panel, also of one series)."""
    from tsforecast.dataset.long import id_column, with_series_id

    long = with_series_id(frame, cfg.data)
    panel = build_panel(
        long, id_column=id_column(cfg.data), timestamp_column="timestamp", columns=["y"],
        split=cfg.split, window=cfg.window, freq="h", anchor="start",
    )  # fmt: skip
    save_panel(panel, paths.prepared)


def card(frame: pd.DataFrame, cfg: Config, rows: int) -> dict:
    """A model card's ``series_scalers``: each series' mean and std over its first ``rows`` rows."""
    from tsforecast.dataset.long import id_column, with_series_id

    long = with_series_id(frame, cfg.data)
    idc = id_column(cfg.data)
    head = long.groupby(idc, sort=False, observed=True).head(rows)
    stats = head.groupby(idc, sort=False, observed=True)["y"].agg(["mean", lambda v: v.std(ddof=0)])
    return {"series_scalers": {"ids": [str(i) for i in stats.index], "mean": [[m] for m in stats.iloc[:, 0]],
                               "std": [[s] for s in stats.iloc[:, 1]]}}  # fmt: skip


def delivery(
    frame: pd.DataFrame, cfg: Config, origin_row: int, error: float = 1.0, version: str = "1",
    delivered_at: str = "2024-02-01", width: float = 2.0, train_rows: int = 300,
) -> pd.DataFrame:  # fmt: skip
    """The archive rows of a forecast made at each series' row ``origin_row``: actual + ``error``
    (so its MAE is ``abs(error)`` once the horizon arrived), an 80 % interval of +-``width``."""
    from tsforecast.dataset.long import id_column, with_series_id, without_series_id

    long = with_series_id(frame, cfg.data)
    idc = id_column(cfg.data)
    k = long.groupby(idc, sort=False, observed=True).cumcount()
    history = long[k <= origin_row]
    future = long[(k > origin_row) & (k <= origin_row + H)]
    out = future[[idc, "timestamp"]].assign(forecast=future["y"].to_numpy() + error)
    out = out.assign(lo_80=out["forecast"] - width, hi_80=out["forecast"] + width)
    if len(future) < H * long[idc].nunique():  # the horizon runs past the data: extend the grid
        out = _extend(long, idc, origin_row, error, width)
    return archive_frame(
        without_series_id(out, cfg.data).reset_index(drop=True), without_series_id(history, cfg.data),
        cfg.data, version, card(frame, cfg, train_rows), pd.Timestamp(delivered_at, tz="UTC"),
    )  # fmt: skip


def _extend(long: pd.DataFrame, idc: str, origin_row: int, error: float, width: float) -> pd.DataFrame:
    parts = []
    for sid, grp in long.groupby(idc, sort=False, observed=True):
        origin = grp["timestamp"].iloc[origin_row]
        ts = pd.date_range(origin, periods=H + 1, freq="h")[1:]
        known = grp.set_index("timestamp")["y"].reindex(ts).fillna(0.0).to_numpy()
        part = pd.DataFrame({idc: sid, "timestamp": ts, "forecast": known + error})
        parts.append(part.assign(lo_80=part["forecast"] - width, hi_80=part["forecast"] + width))
    return pd.concat(parts, ignore_index=True)


def archive(paths: Paths, frames: list[pd.DataFrame]) -> list[Path]:
    """Write deliveries into the checkout's archive; returns the files."""
    return [write(f, archive_dir(paths))[0] for f in frames]


def checkout(tmp_path: Path, cfg: Config, frame: pd.DataFrame, newest: pd.DataFrame | None = None) -> Paths:
    """A checkout with params.yaml, data/validated/ (``newest``, default ``frame``) and data/prepared/
    (the panel of ``frame``'s first 300 rows: the training data)."""
    import yaml

    root = tmp_path / "repo"
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    paths = Paths.from_root(root)
    write_validated(paths.validated, newest if newest is not None else frame)
    head = frame.groupby(ID, sort=False).head(300) if ID in frame.columns else frame.head(300)
    write_prepared(paths, cfg, head)
    return paths


def backtest_json(paths: Paths, mse: float = 0.01, cuts: tuple[float, ...] = (0.008, 0.01, 0.012)) -> None:
    """metrics/backtest.json with a pooled mse_scaled and per-cutoff values."""
    write_json(paths.metrics / "backtest.json", {"mse_scaled": mse, "n_cutoffs": len(cuts),
                                                 "by_cutoff": [{"mse_scaled": c} for c in cuts]})  # fmt: skip
