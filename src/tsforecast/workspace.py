"""The user's repo behind a DVC experiment's temporary copy.

``dvc exp run --temp`` and queued experiments (``dvc exp run --queue`` + ``dvc queue start``)
run the pipeline in a copy of the repo under ``<repo>/.dvc/tmp/exps/<tmp dir>/``, which DVC
deletes once the experiment is saved. What must outlive the run (the local MLflow store:
``mlflow.db`` and ``mlartifacts/``) belongs in the user's repo, not in the copy.

How a copy is recognised: DVC runs every stage command with ``DVC_ROOT`` set, and for an
experiment in a temp dir it sets ``DVC_ROOT`` to the *parent* repo's root (see
``dvc/repo/experiments/queue/base.py``: "Override DVC_ROOT env var to point to the parent DVC
repo root (and not an executor tempdir root)"); the copy itself lies under that root's
``.dvc/tmp/exps/`` (``EXEC_TMP_DIR`` in ``dvc/repo/experiments/utils.py``). Without
``DVC_ROOT`` (a stage run by hand inside the copy) the path alone decides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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


__all__ = ["DVC_ROOT_ENV", "exp_copy_parent", "user_root"]
