"""Run DVC from Prefect tasks: one stage per ``dvc repro --single-item``, output streamed to a logger.

Nothing here knows what a stage does, and nothing re-reads dvc.yaml: the stage list, the
graph and the status come from DVC's own commands (``dvc stage list``, ``dvc dag``,
``dvc status --json``), the pipeline order from the stage table (:mod:`tsforecast.stages`).
A failed stage raises :class:`StageFailed` with the ``error:`` lines our CLI prints and a
``transient`` flag decided by exit codes alone: the CLI exits 75 (EX_TEMPFAIL) when a retry
may help (a registry or network unreachable), a killed stage is worth another try, any other
failure is final. DVC itself waits for a held lock (``--wait-for-lock``).

The second half is the hand-off to a worker that shares no disk with the pipeline: the
workspace files that pin a run (params.yaml, dvc.yaml, dvc.lock) travel as flow parameters
one way and the dvc.lock DVC wrote on the worker the other way; data and models travel
through the DVC remote (``dvc push`` / ``dvc pull`` of stage names).
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

from tsforecast.cli import EX_INTERRUPTED, EX_TEMPFAIL
from tsforecast.stages import NAMES as PIPELINE_ORDER

Logger = logging.Logger | logging.LoggerAdapter

#: Files that pin a pipeline run; a remote worker overwrites its copies with the pipeline's.
WORKSPACE_FILES = ("params.yaml", "dvc.yaml", "dvc.lock")
#: The file a worker sends back: DVC's record of the stage it ran.
LOCK_FILE = "dvc.lock"

# DVC reports a failed stage command's exit code as "... failed to run: <cmd>, exited with N".
_EXITED = re.compile(r"exited with (-?\d+)")
# `dvc dag --dot`: one edge per line, `"<upstream>" -> "<downstream>";`
_DOT_EDGE = re.compile(r'^\s*"([^"]+)"\s*->\s*"([^"]+)"')
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
        """The exit code of the stage's own command, as DVC reports it (None: no stage ran)."""
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


def order_stages(defined: Iterable[str], only: Iterable[str] | None = None) -> list[str]:
    """``defined`` in pipeline order (the stage table's), then the others as given; ``only``
    keeps a subset and must name defined stages."""
    defined = list(defined)
    plan = [s for s in PIPELINE_ORDER if s in defined] + [s for s in defined if s not in PIPELINE_ORDER]
    if only is None:
        return plan
    wanted = list(only)
    unknown = [s for s in wanted if s not in plan]
    if unknown:
        raise ValueError(f"stages {unknown} are not in dvc.yaml; its stages are {plan}")
    return [s for s in plan if s in wanted]


def stage_plan(root: Path, only: Iterable[str] | None = None, log: Logger | None = None) -> list[str]:
    """The stages ``dvc stage list`` finds, in pipeline order; ``only`` keeps a subset."""
    result = dvc(root, log or logging.getLogger(__name__), "stage", "list", "--name-only")
    return order_stages([line.strip() for line in result.stdout if line.strip()], only)


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
    """``python -m dvc --wait-for-lock <args>``: a lock held by another DVC process is waited for."""
    return [sys.executable, "-m", "dvc", "--wait-for-lock", *args]


def killed(code: int) -> bool:
    """Whether an exit code means the process was killed by a signal (not a person's Ctrl-C)."""
    return code < 0 or (code > 128 and code != EX_INTERRUPTED)


def is_transient(result: CommandResult, *, moves_data: bool = False) -> bool:
    """Whether a failed DVC command is worth another try, from exit codes alone.

    - the stage's command exited 75 (EX_TEMPFAIL: our CLI's registry or network unreachable)
      or was killed (a lost worker, an out-of-memory kill): yes; any other exit code
      (1: a data or config error, 2: a usage error, 130: interrupted): no;
    - DVC itself killed: yes;
    - DVC itself failed, no stage ran: only for commands that move data through the remote
      (``moves_data``: push, pull), whose failures are the remote's I/O.
    """
    code = result.stage_returncode
    if code is not None:
        return code == EX_TEMPFAIL or killed(code)
    if killed(result.returncode):
        return True
    return moves_data


def check(result: CommandResult, what: str, *, moves_data: bool = False) -> CommandResult:
    """Raise :class:`StageFailed` for a failed command, classified by :func:`is_transient`."""
    if result.returncode == 0:
        return result
    code = result.stage_returncode
    raise StageFailed(
        what,
        transient=is_transient(result, moves_data=moves_data),
        returncode=code if code is not None else result.returncode,
        error_lines=result.error_lines,
        detail=result.dvc_errors or result.stderr_tail[-5:],
    )


def repro_stage(root: Path, stage: str, log: Logger) -> CommandResult:
    """``dvc repro --single-item <stage>``: runs it when its deps or params changed."""
    result = run_command(dvc_args("repro", "--single-item", stage), root, log)
    return check(result, f"stage '{stage}'")


def stage_ran(result: CommandResult, stage: str) -> bool:
    """Whether ``dvc repro`` ran ``stage``'s command (False: DVC found it up to date and skipped it)."""
    marker = f"Running stage '{stage}'"
    return any(marker in line for line in result.stdout)


def dvc(root: Path, log: Logger, *args: str) -> CommandResult:
    """Any other DVC command (status, dag, ...), with the same failure handling."""
    return check(run_command(dvc_args(*args), root, log), f"dvc {' '.join(args)}")


def transfer(root: Path, log: Logger, command: str, targets: Sequence[str]) -> CommandResult | None:
    """``dvc push`` / ``dvc pull`` of ``targets`` (stage names); a failure is the remote's, retried."""
    if not targets:
        return None
    result = run_command(dvc_args(command, *targets), root, log)
    return check(result, f"dvc {command} {' '.join(targets)}", moves_data=True)


def stage_status(root: Path, stage: str, log: Logger, *, with_deps: bool = False) -> dict[str, Any]:
    """``dvc status --json [--with-deps] <stage>``: empty when the stage (and, with ``with_deps``,
    every stage upstream of it) is up to date."""
    result = dvc(root, log, "status", "--json", *(["--with-deps"] if with_deps else []), stage)
    text = "\n".join(result.stdout).strip()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {}


def upstream_stages(root: Path, stage: str, log: Logger) -> list[str]:
    """The stages whose outputs ``stage`` reads directly: its parents in ``dvc dag --dot``."""
    result = dvc(root, log, "dag", "--dot", stage)
    parents = [m.group(1) for line in result.stdout if (m := _DOT_EDGE.match(line)) and m.group(2) == stage]
    return order_stages(dict.fromkeys(parents))


def uncached_outputs(root: Path, stage: str) -> list[str]:
    """The outputs of ``stage`` marked ``cache: false`` (DVC's own stage model reads dvc.yaml): git
    tracks them, so no DVC remote holds them and a worker must hand them back itself."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [str(out.def_path) for st in repo.stage.collect(stage) for out in st.outs if not out.use_cache]


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


def write_workspace_files(
    root: Path, files: Mapping[str, str], log: Logger, source: str = "the pipeline run"
) -> list[str]:
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
        log.info("workspace files taken from %s: %s", source, ", ".join(changed))
    return changed


def adopt_lock(root: Path, lock_text: str, stage: str, log: Logger) -> None:
    """Take the ``dvc.lock`` a worker wrote after running ``stage``, then ``dvc pull <stage>``.

    ``dvc status --with-deps <stage>`` must then be clean: the worker ran the same code and
    params on the same inputs. Otherwise this checkout's ``dvc.lock`` is put back as it was and
    :class:`StageFailed` names what differs.
    """
    path = root / LOCK_FILE
    before = path.read_text() if path.is_file() else None
    write_workspace_files(root, {LOCK_FILE: lock_text}, log, source=f"the worker that ran '{stage}'")
    try:
        transfer(root, log, "pull", [stage])
        changes = stage_status(root, stage, log, with_deps=True)
        if changes:
            raise StageFailed(
                f"adopting stage '{stage}' from the worker",
                transient=False,
                detail=[
                    f"dvc status --with-deps {stage}: {json.dumps(changes)}",
                    "the worker's checkout differs from this one; update it to this commit",
                ],
            )
    except BaseException:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            write_workspace_files(root, {LOCK_FILE: before}, log, source="before the hand-off (rolled back)")
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
