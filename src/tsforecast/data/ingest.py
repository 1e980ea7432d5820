"""Stage ``ingest``: read the series (built-in or a CSV/Parquet file) into ``data/raw/``."""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tsforecast.config import BUILTIN_M4_HOURLY, BUILTIN_TAYLOR, DataConfig
from tsforecast.errors import DataError
from tsforecast.io import atomic_dir, recover_dir, write_json
from tsforecast.paths import RAW_FILE, RAW_META, Paths

log = logging.getLogger(__name__)

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
TAYLOR_START = "2000-06-05 00:00"  # Monday; documented start of Taylor (2003)
TAYLOR_FREQ = "30min"


@dataclass(frozen=True)
class IngestResult:
    n_rows: int
    columns: list[str]
    source: str


def load_taylor_frame(timestamp_column: str = "timestamp", target: str = "demand") -> pd.DataFrame:
    """The embedded default: 4,032 half-hourly demand values from the pmdarima package."""
    from pmdarima.datasets import load_taylor

    values = load_taylor(as_series=False)
    ts = pd.date_range(TAYLOR_START, periods=len(values), freq=TAYLOR_FREQ)
    return pd.DataFrame({timestamp_column: ts, target: values.astype("float64")})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".txt":  # unknown delimiter: let csv.Sniffer decide
            df = pd.read_csv(path, sep=None, engine="python")
        else:
            df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as e:
        first = str(e).splitlines()[0]
        raise DataError(f"{path}: not a readable CSV ({first}); expected comma-separated text") from None
    if df.shape[1] == 1:
        name = str(df.columns[0])
        for delim in (";", "\t", "|"):
            if delim in name:
                shown = {"\t": "tab"}.get(delim, delim)
                raise DataError(
                    f"{path}: one column {name!r} was read; the file looks {shown!r}-delimited. "
                    "Save it comma-separated (or as Parquet)"
                )
    return df


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file and the fix."""
    if not path.exists():
        raise DataError(
            f"data.path={str(path)!r}: file not found; set data.path to a CSV/Parquet file "
            f"or '{BUILTIN_TAYLOR}' (one series) or '{BUILTIN_M4_HOURLY}' (a panel)"
        )
    if path.is_dir():
        raise DataError(f"data.path={str(path)!r} is a directory; point it at one CSV or Parquet file")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        df = _read_csv(path)
    elif suffix in PARQUET_SUFFIXES:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; expected a Parquet file")
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    else:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .tsv or .parquet")
    if len(df) == 0:
        raise DataError(f"{path}: has a header ({list(df.columns)}) but no rows")
    return df


def parse_timestamps(values: pd.Series, column: str, source: str) -> pd.Series:
    """Parse ISO 8601 or common formats, keeping time zones; fail naming bad values."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        return values
    text = values.astype("string")
    missing = text.isna() | (text.str.strip() == "")
    if missing.any():
        rows = list(missing[missing].index[:5])
        raise DataError(
            f"{source}: column '{column}' has {int(missing.sum())} empty timestamp(s) "
            f"(rows {rows}); every row needs a timestamp"
        )
    last_error: Exception | None = None
    for fmt in ("ISO8601", "mixed"):
        try:
            parsed = pd.to_datetime(text, format=fmt)
        except (ValueError, TypeError) as e:
            last_error = e
            if "mixed time" in str(e).lower() or "tz-aware and tz-naive" in str(e).lower():
                break
            continue
        if parsed.dtype == object:  # several UTC offsets survive as objects
            last_error = ValueError("Mixed timezones detected")
            break
        return parsed
    message = str(last_error)
    if "mixed time" in message.lower() or "tz-aware and tz-naive" in message.lower():
        offsets = sorted({s[19:] or "none" for s in text.head(10_000)} - {""})[:5]
        raise DataError(
            f"{source}: column '{column}' mixes time zones (offsets seen: {offsets}); "
            "convert every timestamp to one zone, e.g. UTC"
        )
    if text.str.fullmatch(r"\s*-?\d+\s*").all():  # 1, 2, 3 ...: step numbers, as in M4's files
        head = ", ".join(text.head(3))
        raise DataError(
            f"{source}: column '{column}' holds integers ({head}, ...), step numbers rather than "
            "timestamps; give each row a timestamp, e.g. in pandas "
            f"df['{column}'] = pd.Timestamp('2000-01-01') + pd.to_timedelta(df['{column}'] - 1, unit='h') "
            "for hourly steps"
        )
    bad = [v for v in text.head(100_000) if pd.isna(pd.to_datetime(v, errors="coerce", format="mixed"))]
    raise DataError(
        f"{source}: column '{column}' has unparseable timestamps {bad[:5]}; "
        "use ISO 8601 such as 2000-06-05 00:30:00"
    )


M4_COLUMNS = {"id_column": "unique_id", "timestamp_column": "timestamp", "target": "value"}


def _builtin(cfg: DataConfig) -> pd.DataFrame:
    """An embedded data set, refused with the exact ``-S`` settings when data.* does not fit it."""
    if cfg.path == BUILTIN_TAYLOR:
        if (cfg.timestamp_column, cfg.target) != ("timestamp", "demand") or cfg.covariates or cfg.id_column:
            raise DataError(
                f"data.path={BUILTIN_TAYLOR!r} is one series with columns ['timestamp', 'demand'] and no "
                f"covariates; got timestamp_column={cfg.timestamp_column!r}, target={cfg.target!r}, "
                f"covariates={list(cfg.covariates)}, id_column={cfg.id_column!r}"
            )
        return load_taylor_frame()
    fix = [f"-S data.{k}={v}" for k, v in M4_COLUMNS.items() if getattr(cfg, k) != v]
    fix += ["-S 'data.covariates=[]'"] if cfg.covariates else []
    if fix:
        raise DataError(
            f"data.path={BUILTIN_M4_HOURLY!r} is a panel of 414 series with columns "
            f"{list(M4_COLUMNS.values())} and no covariates; add {' '.join(fix)} "
            "(or set them under data: in params.yaml)"
        )
    from tsforecast.data.datasets import load_m4_hourly

    return load_m4_hourly()


def ids_as_strings(ids: pd.Series) -> pd.Series:
    """Series ids as text (a categorical keeps its codes, its categories become text); missing
    ids stay missing for validate to name."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cats = ids.cat.categories
        return ids if pd.api.types.is_string_dtype(cats) else ids.cat.rename_categories(cats.astype(str))
    if pd.api.types.is_string_dtype(ids.dtype) and not pd.api.types.is_object_dtype(ids.dtype):
        return ids
    return ids.astype("string")


def read_source(cfg: DataConfig, root: Path) -> tuple[pd.DataFrame, str, str | None]:
    """The series as a frame with a parsed timestamp column, its source and file hash."""
    if cfg.path in (BUILTIN_TAYLOR, BUILTIN_M4_HOURLY):
        return _builtin(cfg), cfg.path, None
    path = Path(cfg.path)
    path = path if path.is_absolute() else root / path
    df = read_table(path)
    df.columns = [str(c) for c in df.columns]
    if cfg.timestamp_column not in df.columns:
        raise DataError(
            f"{path}: column '{cfg.timestamp_column}' not found; columns are {list(df.columns)}. "
            "Set data.timestamp_column"
        )
    if cfg.id_column is not None:
        if cfg.id_column not in df.columns:
            raise DataError(
                f"{path}: series id column '{cfg.id_column}' not found; columns are {list(df.columns)}. "
                "Set data.id_column to the column naming each row's series (or null for one series)"
            )
        df[cfg.id_column] = ids_as_strings(df[cfg.id_column])
    df[cfg.timestamp_column] = parse_timestamps(df[cfg.timestamp_column], cfg.timestamp_column, str(path))
    return df, str(cfg.path), _sha256(path)


def run_ingest(data: DataConfig, paths: Paths) -> IngestResult:
    """Read the configured source and write ``data/raw/data.parquet`` plus ``meta.json``."""
    df, source, digest = read_source(data, paths.root)  # edge: read
    for col in df.columns:  # mixed-type object columns cannot go to Parquet as they are
        if df[col].dtype == object:
            df[col] = df[col].astype("string")
    meta = {
        "source": source,
        "source_sha256": digest,
        "n_rows": len(df),
        "columns": list(df.columns),
    }
    n_series = int(df[data.id_column].nunique()) if data.id_column else 1  # the file names its series or is one
    meta.update(id_column=data.id_column, n_series=n_series)
    with atomic_dir(paths.raw) as tmp:  # edge: atomic write
        df.to_parquet(tmp / RAW_FILE, index=False)
        write_json(tmp / RAW_META, meta)
    log.info(
        "ingested %d rows from %s%s",
        len(df),
        source,
        f" ({n_series} series)",
    )
    return IngestResult(n_rows=len(df), columns=list(df.columns), source=source)


def read_raw(raw_dir: Path) -> pd.DataFrame:
    """The frame that ``ingest`` wrote."""
    recover_dir(raw_dir, clean=False)  # a swap killed between its two renames
    path = raw_dir / RAW_FILE
    if not path.is_file():
        raise DataError(f"{path} not found; run `tsforecast ingest` (or `dvc repro ingest`) first")
    return pd.read_parquet(path)
