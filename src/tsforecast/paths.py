"""Where every stage reads and writes, relative to the repo root, and the file names inside.

The file names are the one place both a stage that writes a file and the stages that read it
look them up; each producer module owns the reader of its outputs (``ingest.read_raw``,
``data.validate.read_validated``, ``dataset.panel.load_panel``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


# ---------------------------------------------------------------------------- the user's repo behind a dvc experiment's temporary copy
# The user's repo behind a DVC experiment's temporary copy.
#
# ``dvc exp run --temp`` and queued experiments (``dvc exp run --queue`` + ``dvc queue start``)
# run the pipeline in a copy of the repo under ``<repo>/.dvc/tmp/exps/<tmp dir>/``, which DVC
# deletes once the experiment is saved. What must outlive the run (the local MLflow store:
# ``mlflow.db`` and ``mlartifacts/``) belongs in the user's repo, not in the copy.
#
# How a copy is recognised: DVC runs every stage command with ``DVC_ROOT`` set, and for an
# experiment in a temp dir it sets ``DVC_ROOT`` to the *parent* repo's root (see
# ``dvc/repo/experiments/queue/base.py``: "Override DVC_ROOT env var to point to the parent DVC
# repo root (and not an executor tempdir root)"); the copy itself lies under that root's
# ``.dvc/tmp/exps/`` (``EXEC_TMP_DIR`` in ``dvc/repo/experiments/utils.py``). Without
# ``DVC_ROOT`` (a stage run by hand inside the copy) the path alone decides.
DVC_ROOT_ENV = "DVC_ROOT"
EXPS_TMP = (".dvc", "tmp", "exps")  # DVC's experiment executors' folder, relative to a repo root


def exp_copy_parent(root: Path) -> Path | None:
    """The repo whose ``.dvc/tmp/exps/`` holds ``root``, or None when ``root`` is no temp copy."""
    parts = Path(root).resolve().parts
    n = len(EXPS_TMP)
    for i in range(len(parts) - n - 1, 0, -1):  # the innermost match: a copy inside a copy is still a copy
        if parts[i : i + n] == EXPS_TMP:
            return Path(*parts[:i])
    return None


def user_root(root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """``root``, or the user's repo when ``root`` is a DVC experiment's temporary copy of it."""
    root = Path(root).resolve()
    parent = exp_copy_parent(root)
    if parent is None:
        return root
    env = os.environ if environ is None else environ
    named = env.get(DVC_ROOT_ENV)
    if named and exp_copy_parent(Path(named)) is None and root.is_relative_to(Path(named).resolve()):
        return Path(named).resolve()  # DVC's word for the parent repo
    return parent
