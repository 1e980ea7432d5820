"""File I/O at the stage edges: atomic writes, so a killed stage leaves the old outputs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def recover_dir(target: Path, clean: bool = True) -> None:
    """Undo a swap that was killed between its two renames; with ``clean``, drop stale temp dirs.

    Readers call it with ``clean=False``: a temp dir may belong to a writer still running.
    """
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{target.name}.old-*"))
    if not target.exists() and olds:
        os.replace(olds[-1], target)
        olds = olds[:-1]
    if not clean:
        return
    for stale in [*olds, *parent.glob(f".{target.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp dir beside ``target``; on success it replaces ``target`` whole.

    On an exception (or a kill) ``target`` keeps what it held before.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _sealed_temp(target: Path, mode: str) -> Iterator[tuple[Any, Path]]:
    """A hidden temp file beside ``target``, open in ``mode``; flushed, fsynced and made 0644 when
    the block ends cleanly. The caller moves it into place (and removes it on failure)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    with open(tmp, mode) as fh:
        yield fh, tmp
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temp file beside ``target``; it is renamed over ``target`` when closed cleanly."""
    target = Path(target)
    tmp: Path | None = None
    try:
        with _sealed_temp(target, mode) as (fh, tmp):
            yield fh
        os.replace(tmp, target)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_create(target: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
    """Like :func:`atomic_file`, but never replaces: the file appears whole, once, or not at all.

    The temp file is hard-linked to ``target`` (which fails if ``target`` exists:
    :class:`FileExistsError`, the temp file removed), so a later writer cannot overwrite it and
    a killed writer leaves only a hidden ``.<name>.tmp-*`` file, never a partial ``target``.
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        with _sealed_temp(target, mode) as (fh, tmp):
            yield fh
        try:
            os.link(tmp, target)  # atomic, and refuses an existing target
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: exclusive only between checks
            if target.exists():
                raise FileExistsError(f"{target} exists; it is never overwritten") from None
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_png(fig: Any, path: str | os.PathLike[str]) -> None:
    """Save a matplotlib figure as a PNG atomically, then close it."""
    import matplotlib.pyplot as plt

    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    with atomic_file(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())
