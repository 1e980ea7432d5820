"""Progress bars: a live bar on a terminal, plain lines (no carriage returns) anywhere else."""

from __future__ import annotations

import io

import pytest

from tsforecast import progress as progress_mod
from tsforecast.progress import ENV, progress_bar, progress_mode


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_a_pipe_gets_lines_and_a_terminal_gets_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_mode() == "lines"
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    assert progress_mode() == "bar"


@pytest.mark.parametrize(
    ("value", "mode"), [("bar", "bar"), ("lines", "lines"), ("off", "off"), ("OFF", "off")]
)
def test_the_env_var_overrides_the_terminal_check(
    monkeypatch: pytest.MonkeyPatch, value: str, mode: str
) -> None:
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    monkeypatch.setenv(ENV, value)

    assert progress_mode() == mode


def test_tqdm_disable_turns_bars_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    monkeypatch.setenv("TQDM_DISABLE", "1")

    assert progress_mode() == "off"


def test_short_work_in_a_log_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)

    assert sum(progress_bar(range(50), desc="epoch 1/3", leave=False)) == sum(range(50))
    assert err.getvalue() == ""


def test_postfix_updates_in_a_log_wait_for_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training loop sets the running loss every few batches: no line for each of those."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)

    bar = progress_bar(range(40), desc="epoch 1/3", leave=False)
    for i in bar:
        bar.set_postfix(loss=f"{1 / (i + 1):.4f}")
        bar.set_description(f"epoch 1/3 batch {i}")

    assert err.getvalue() == ""


def test_long_work_in_a_log_writes_whole_lines_without_carriage_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(progress_mod, "LINE_INTERVAL_S", 0.0)  # every update is "a minute later"

    for _ in progress_bar(range(3), desc="epoch 1/3", unit="batch", leave=False):
        pass

    text = err.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 3
    assert all(line.startswith("epoch 1/3:") for line in lines), lines
    assert "3/3" in lines[-1]


def test_on_a_terminal_the_bar_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    term = FakeTerminal()
    monkeypatch.setattr("sys.stderr", term)

    for _ in progress_bar(range(3), desc="epoch 1/3", file=term, mininterval=0):
        pass

    assert "\r" in term.getvalue()


def test_a_callers_disable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(progress_mod, "LINE_INTERVAL_S", 0.0)

    list(progress_bar(range(3), disable=True))

    assert err.getvalue() == ""
