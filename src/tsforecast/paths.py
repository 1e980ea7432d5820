"""Where every stage reads and writes, relative to the repo root, and the file names inside.

The file names are the one place both a stage that writes a file and the stages that read it
look them up; each producer module owns the reader of its outputs (``ingest.read_raw``,
``data.validate.read_validated``, ``dataset.panel.load_panel``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# data/raw/ (ingest)
RAW_FILE = "data.parquet"
RAW_META = "meta.json"
# data/validated/ (validate), reports/ (validate)
VALIDATED_FILE = "data.parquet"
VALIDATED_META = "meta.json"
VALIDATION_REPORT = "validation.json"
DATA_DOCS_DIR = "data_docs"
# data/prepared/ (window)
SERIES_FILE = "series.npy"
PREPARED_META = "meta.json"
SCALER_FILE = "scaler.json"
TIMESTAMPS_FILE = "timestamps.parquet"
# metrics/, plots/ (evaluate)
BY_SERIES_FILE = "by_series.parquet"  # metrics/: one row per series (a panel's, or the one series')
WORST_PLOT = "worst_series.png"  # plots/: the worst series of a panel, the worst windows of one series


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds params.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").is_file():
            return folder
    return here


@dataclass(frozen=True)
class Paths:
    """All stage inputs and outputs of one repo checkout."""

    root: Path

    @classmethod
    def from_root(cls, root: str | os.PathLike[str] | None = None) -> Paths:
        return cls(Path(root).resolve() if root else find_root())

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def validated(self) -> Path:
        return self.root / "data" / "validated"

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def checkpoints(self) -> Path:
        """Resume state of an interrupted training run (not a DVC output)."""
        return self.root / ".checkpoints"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def forecasts(self) -> Path:
        """The ``forecast`` stage's table: ``forecast.parquet``."""
        return self.root / "forecasts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"
