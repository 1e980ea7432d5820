"""Run DVC from Prefect tasks: one stage per ``dvc repro --single-item``, output streamed to a logger.

Nothing here knows what a stage does. A failed stage raises :class:`StageFailed` with the
``error:`` lines our CLI prints (one per user error) and a ``transient`` flag that decides
whether Prefect retries it: data and config errors are final, a killed process, a held
DVC lock or an unreachable server are worth another try.

The second half is the hand-off to a worker that shares no disk with the pipeline: the
workspace files that pin a run (params.yaml, dvc.yaml, dvc.lock) travel as flow
parameters, data and models through the DVC remote, and the stage's dvc.lock entry back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tsforecast.cli import STAGES as PIPELINE_ORDER

Logger = logging.Logger | logging.LoggerAdapter

#: Files that pin a pipeline run; a remote worker overwrites its copies with the pipeline's.
WORKSPACE_FILES = ("params.yaml", "dvc.yaml", "dvc.lock")

#: Stages whose failure is a verdict on the data, never retried unless the process was killed.
NEVER_RETRIED = frozenset({"validate"})

# Faults that a later attempt can get past: servers that are down or busy, a held lock.
_TRANSIENT = re.compile(
    r"connection refused|connection (?:reset|aborted|error)|could not be reached|unreachable"
    r"|timed out|temporar(?:il)?y unavailable|service unavailable|bad gateway|gateway time-?out"
    r"|max retries exceeded|name or service not known|network is down|broken pipe"
    r"|unable to acquire lock|database is locked",
    re.IGNORECASE,
)
_EXITED = re.compile(r"exited with (-?\d+)")
# DVC's advice after each stage, for people at a terminal: debug level in the flow log.
_DVC_HINT = re.compile(
    r"^\s*(To track the changes with git|git add |To enable auto staging|dvc config core\.autostage"
    r"|Use `dvc push` to send)"
)
_STDERR_TAIL = 40


class StageFailed(RuntimeError):
    """A DVC command failed; ``transient`` says whether trying again can help."""

    def __init__(
        self,
        what: str,
        *,
        transient: bool,
        returncode: int | None = None,
        error_lines: Sequence[str] = (),
        detail: Sequence[str] = (),
    ) -> None:
        self.what = what
        self.transient = transient
        self.returncode = returncode
        self.error_lines = list(error_lines)
        kind = "transient, retried" if transient else "not retried"
        code = f"exit {returncode}, " if returncode is not None else ""
        lines = self.error_lines or list(detail)
        super().__init__("\n".join([f"{what} failed ({code}{kind})", *lines]))


@dataclass
class CommandResult:
    """What a finished command left behind: its exit code and its stderr, in part."""

    args: list[str]
    returncode: int
    error_lines: list[str] = field(default_factory=list)  # our CLI's `error: ...` lines, all of them
    dvc_errors: list[str] = field(default_factory=list)  # DVC's `ERROR: ...` lines
    stderr_tail: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)

    @property
    def stage_returncode(self) -> int | None:
        """The exit code of the stage's own command, from DVC's `exited with N`."""
        for line in reversed(self.dvc_errors):
            if m := _EXITED.search(line):
                return int(m.group(1))
        return None


def repo_root(repo_dir: str | os.PathLike[str] | None = None) -> Path:
    """The checkout the flow runs in: ``repo_dir``, else the working directory."""
    root = Path(repo_dir or os.getcwd()).resolve()
    if not (root / "dvc.yaml").is_file():
        raise FileNotFoundError(
            f"{root}: no dvc.yaml here; run from the repo root, pass repo_dir, or start the worker "
            "with TSFORECAST_REPO=<checkout> (prefect.yaml's pull step changes into it)"
        )
    return root


def read_dvc_yaml(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "dvc.yaml").read_text()) or {}


def stage_plan(root: Path, only: Iterable[str] | None = None) -> list[str]:
    """The stages of dvc.yaml in pipeline order (ingest, validate, window, train, evaluate,
    register), then any others in file order; ``only`` keeps a subset."""
    defined = list(read_dvc_yaml(root).get("stages") or {})
    plan = [s for s in PIPELINE_ORDER if s in defined] + [s for s in defined if s not in PIPELINE_ORDER]
    if only is None:
        return plan
    wanted = list(only)
    unknown = [s for s in wanted if s not in plan]
    if unknown:
        raise ValueError(f"stages {unknown} are not in {root / 'dvc.yaml'}; its stages are {plan}")
    return [s for s in plan if s in wanted]


def subprocess_env() -> dict[str, str]:
    """This environment, with this interpreter's scripts first on PATH (`tsforecast`, `python`)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _pump(stream: IO[str], log: Logger, sink: list[str] | deque[str], result: CommandResult) -> None:
    for raw in stream:
        line = raw.rstrip("\n").split("\r")[-1].rstrip()  # progress bars: keep the last redraw
        if not line:
            continue
        sink.append(line)
        if line.startswith("error:"):
            result.error_lines.append(line)
            log.error(line)
        elif line.startswith("ERROR:"):
            result.dvc_errors.append(line)
            log.error(line)
        elif _DVC_HINT.match(line):
            log.debug(line)
        else:
            log.info(line)


def run_command(args: Sequence[str], cwd: Path, log: Logger) -> CommandResult:
    """Run ``args`` in ``cwd``, logging stdout and stderr line by line as they come."""
    result = CommandResult(args=list(args), returncode=-1)
    tail: deque[str] = deque(maxlen=_STDERR_TAIL)
    log.info("$ %s", " ".join(args[2:] if args[1:2] == ["-m"] else args))
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None and proc.stderr is not None
    err = threading.Thread(target=_pump, args=(proc.stderr, log, tail, result), daemon=True)
    err.start()
    try:
        _pump(proc.stdout, log, result.stdout, result)
        err.join()
        result.returncode = proc.wait()
    except BaseException:  # cancelled or interrupted: do not leave the stage running
        proc.kill()
        proc.wait()
        raise
    result.stderr_tail = list(tail)
    return result


def dvc_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def is_transient(stage: str | None, result: CommandResult) -> bool:
    """Whether a failed DVC command is worth another try.

    - the stage's command was killed or crashed with an exit code other than 1
      (a lost worker, an out-of-memory kill): yes;
    - ``validate``: otherwise never, its failure is a verdict on the data;
    - our CLI's ``error:`` lines or DVC's own errors: only when they say a server or
      lock was unavailable (MLflow unreachable, DVC lock held, remote timed out);
    - exit code 1 with neither: a bug, no.
    """
    code = result.stage_returncode
    if code is not None and code != 1 and not result.error_lines:
        return True
    if stage in NEVER_RETRIED and code is not None:
        return False
    if result.error_lines:
        return any(_TRANSIENT.search(line) for line in result.error_lines)
    text = "\n".join(result.dvc_errors + result.stderr_tail)
    if code is None and result.returncode < 0:  # DVC itself was killed
        return True
    return bool(_TRANSIENT.search(text))


def check(result: CommandResult, what: str, stage: str | None = None) -> CommandResult:
    """Raise :class:`StageFailed` for a failed command, classified by :func:`is_transient`."""
    if result.returncode == 0:
        return result
    code = result.stage_returncode
    raise StageFailed(
        what,
        transient=is_transient(stage, result),
        returncode=code if code is not None else result.returncode,
        error_lines=result.error_lines,
        detail=result.dvc_errors or result.stderr_tail[-5:],
    )


def repro_stage(root: Path, stage: str, log: Logger) -> CommandResult:
    """``dvc repro --single-item <stage>``: runs it when its deps or params changed."""
    result = run_command(dvc_args("repro", "--single-item", stage), root, log)
    return check(result, f"stage '{stage}'", stage)


def stage_ran(result: CommandResult, stage: str) -> bool:
    """Whether ``dvc repro`` ran ``stage``'s command (False: DVC found it up to date and skipped it)."""
    marker = f"Running stage '{stage}'"
    return any(marker in line for line in result.stdout)


def dvc(root: Path, log: Logger, *args: str) -> CommandResult:
    """Any other DVC command (push, pull, status, ...), with the same failure handling."""
    return check(run_command(dvc_args(*args), root, log), f"dvc {' '.join(args)}")


def stage_status(root: Path, stage: str, log: Logger) -> dict[str, Any]:
    """``dvc status --json <stage>``: empty when the stage is up to date."""
    result = dvc(root, log, "status", "--json", stage)
    text = "\n".join(result.stdout).strip()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def _paths_of(entries: Any) -> list[str]:
    out = []
    for entry in entries or []:
        out.extend(entry if isinstance(entry, dict) else [entry])
    return [str(p).rstrip("/") for p in out]


def upstream_outputs(root: Path, stage: str) -> list[str]:
    """The deps of ``stage`` that other stages produce: what a remote worker must pull."""
    stages = read_dvc_yaml(root).get("stages") or {}
    if stage not in stages:
        raise ValueError(f"stage '{stage}' is not in {root / 'dvc.yaml'}")
    produced = [
        path
        for name, spec in stages.items()
        if name != stage
        for key in ("outs", "metrics", "plots")
        for path in _paths_of(spec.get(key))
    ]
    wanted = []
    for dep in _paths_of(stages[stage].get("deps")):
        for out in produced:
            if (dep == out or dep.startswith(out + "/")) and out not in wanted:
                wanted.append(out)
    return wanted


def uncached_outputs(root: Path, stage: str) -> list[str]:
    """The outputs of ``stage`` marked ``cache: false``: git tracks them, so no DVC remote holds
    them and a worker must hand them back itself (``dvc pull`` cannot)."""
    spec = (read_dvc_yaml(root).get("stages") or {}).get(stage) or {}
    return [
        str(path)
        for key in ("outs", "metrics", "plots")
        for entry in spec.get(key) or []
        if isinstance(entry, dict)
        for path, opts in entry.items()
        if (opts or {}).get("cache", True) is False
    ]


def read_files(root: Path, rels: Iterable[str]) -> dict[str, str]:
    """The text of each existing file of ``rels`` (relative to ``root``)."""
    return {rel: (root / rel).read_text() for rel in rels if (root / rel).is_file()}


def write_files(root: Path, files: Mapping[str, str]) -> dict[str, str | None]:
    """Write ``files`` (relative path -> text) atomically; returns what each held before (None: absent)."""
    before: dict[str, str | None] = {}
    for rel, text in files.items():
        path = root / rel
        before[rel] = path.read_text() if path.is_file() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return before


def restore_files(root: Path, before: Mapping[str, str | None]) -> None:
    """Undo :func:`write_files`."""
    for rel, text in before.items():
        if text is None:
            (root / rel).unlink(missing_ok=True)
        else:
            (root / rel).write_text(text)


def git_head(root: Path) -> str | None:
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def workspace_files(root: Path) -> dict[str, str]:
    """The text of params.yaml, dvc.yaml and dvc.lock, as they are now (uncommitted edits too)."""
    return {name: (root / name).read_text() for name in WORKSPACE_FILES if (root / name).is_file()}


def write_workspace_files(root: Path, files: Mapping[str, str], log: Logger) -> list[str]:
    """Overwrite this checkout's copies of the workspace files; returns the names that changed."""
    unknown = sorted(set(files) - set(WORKSPACE_FILES))
    if unknown:
        raise ValueError(f"refusing to write {unknown}: only {list(WORKSPACE_FILES)} travel with a run")
    changed = []
    for name, text in files.items():
        path = root / name
        if path.is_file() and path.read_text() == text:
            continue
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
        changed.append(name)
    if changed:
        log.info("workspace files taken from the pipeline run: %s", ", ".join(changed))
    return changed


def read_lock(root: Path) -> dict[str, Any]:
    path = root / "dvc.lock"
    return (yaml.safe_load(path.read_text()) if path.is_file() else None) or {"schema": "2.0", "stages": {}}


def lock_entry(root: Path, stage: str) -> dict[str, Any]:
    """The dvc.lock entry of ``stage``: its deps, params and outs as they were when it ran."""
    entry = (read_lock(root).get("stages") or {}).get(stage)
    if not entry:
        raise StageFailed(f"reading dvc.lock entry of '{stage}'", transient=False, detail=["no entry"])
    return entry


def write_lock_entry(root: Path, stage: str, entry: Mapping[str, Any]) -> str | None:
    """Put ``entry`` into dvc.lock for ``stage``; returns the previous file text (None: none)."""
    path = root / "dvc.lock"
    before = path.read_text() if path.is_file() else None
    lock = read_lock(root)
    lock.setdefault("stages", {})[stage] = dict(entry)
    tmp = path.with_name(f".dvc.lock.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(lock, sort_keys=False))
    os.replace(tmp, path)
    return before


def restore_lock(root: Path, before: str | None) -> None:
    path = root / "dvc.lock"
    if before is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(before)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
