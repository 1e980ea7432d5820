"""Progress bars that suit where the output goes.

On a terminal, a live tqdm bar. Anywhere else (Prefect logs, CI, a pipe, a file) a bar redrawn
with carriage returns turns into one long unreadable line, so there it is drawn as plain
lines, at most one a minute and none for work that ends sooner: a training epoch then leaves
just its own log line. ``TSFORECAST_PROGRESS`` overrides the choice: ``bar``, ``lines`` or
``off`` (``auto``, the default, picks by ``sys.stderr.isatty()``); ``TQDM_DISABLE=1`` also
turns bars off, as in tqdm itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, Any, TypeVar

from tqdm import tqdm as plain_tqdm

__all__ = ["ENV", "LINE_INTERVAL_S", "progress_bar", "progress_mode"]

T = TypeVar("T")
ENV = "TSFORECAST_PROGRESS"
MODES = ("auto", "bar", "lines", "off")
LINE_INTERVAL_S = 60.0  # lines mode: the first line after this long, then at most one per interval


def progress_mode() -> str:
    """``bar``, ``lines`` or ``off``, from ``TSFORECAST_PROGRESS``, ``TQDM_DISABLE`` and the terminal."""
    if os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        return "off"
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        mode = "auto"  # progress display is never worth failing a run over
    if mode == "auto":
        stderr = sys.stderr
        return "bar" if stderr is not None and stderr.isatty() else "lines"
    return mode


class _Lines:
    """A stream for tqdm that turns each redraw into one line (no ``\\r``, no blank clears)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class _LineBar(plain_tqdm):
    """tqdm whose postfix and description updates wait for the next timed redraw.

    ``set_postfix`` redraws at once by default: every few batches in a training loop, which in
    lines mode would be a line each time, defeating the interval.
    """

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(iterable: Iterable[T], **kw: Any) -> plain_tqdm:
    """``tqdm(iterable, **kw)`` with the display :func:`progress_mode` picks.

    A caller's ``disable=True`` still wins; in lines mode the refresh interval, the delay and
    the stream are this module's.
    """
    mode = progress_mode()
    disable = bool(kw.pop("disable", False)) or mode == "off"
    if mode == "lines":
        kw.update(
            file=_Lines(sys.stderr),
            mininterval=LINE_INTERVAL_S,
            maxinterval=LINE_INTERVAL_S,
            delay=LINE_INTERVAL_S,
            ascii=True,
            ncols=100,
            dynamic_ncols=False,
        )
        return _LineBar(iterable, disable=disable, **kw)
    from tqdm.auto import tqdm  # a notebook widget in Jupyter, else the terminal bar

    return tqdm(iterable, disable=disable, **kw)
