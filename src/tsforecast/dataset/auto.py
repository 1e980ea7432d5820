"""Defaults that adapt to the data: what ``auto`` resolves to, and why (pure).

* **The seasonal period** (``evaluate.seasonal_period: auto``) comes from the frequency: the
  steps in a day for sub-daily data (hourly 24, half-hourly 48, 15-minute 96), 7 for daily,
  52 for weekly, 12 for monthly, 4 for quarterly, 1 for yearly. Sub-daily data also has a
  weekly candidate (7 x the daily one: half-hourly 336); it is chosen when every series'
  train part holds at least :data:`MIN_CYCLES` weeks and the weekly seasonal-naive error on
  those rows is at least :data:`WEEKLY_GAIN` lower than the daily one, pooled over series,
  each on its own scale (electricity demand repeats weekly; most hourly panels daily).
* **The input size** (``window.input_size: auto``): :data:`INPUT_CYCLES` daily cycles for
  sub-daily data (one week of hourly or half-hourly steps), else :data:`INPUT_PERIODS` seasonal
  periods, at least the seasonal period and twice the horizon, and at most what leaves the
  shortest series' train part :data:`MIN_TRAIN_WINDOWS` windows.

Each choice comes with one sentence saying why, for ``tsforecast params`` and the summary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from pandas.tseries.offsets import BaseOffset, Tick

from tsforecast.dataset.panel import Panel

MIN_CYCLES = 3  # weeks of train rows a series needs before the weekly period is considered
WEEKLY_GAIN = 0.05  # the weekly seasonal naive must beat the daily one by this fraction
INPUT_CYCLES = 7  # sub-daily data: one week of daily cycles in
INPUT_PERIODS = 4  # daily and coarser: this many seasonal periods in
MIN_TRAIN_WINDOWS = 32  # the input size leaves at least this many train windows in the shortest series
DAY = pd.Timedelta(days=1)

_BY_NAME = {"D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4, "Y": 1, "YS": 1}


@dataclass(frozen=True)
class Choice:
    """A resolved ``auto`` value and the reason, one sentence."""

    value: int
    why: str


def _offset(freq: str | BaseOffset) -> BaseOffset:
    return freq if isinstance(freq, BaseOffset) else to_offset(freq)


def steps_per_day(freq: str | BaseOffset) -> int | None:
    """Steps in a day for a sub-daily fixed frequency that divides a day evenly, else None."""
    off = _offset(freq)
    if not isinstance(off, Tick):
        return None
    step = pd.Timedelta(off)
    if step >= DAY or DAY % step != pd.Timedelta(0):
        return None
    return int(DAY // step)


def period_candidates(freq: str | BaseOffset) -> tuple[int, ...]:
    """The seasonal periods worth trying for ``freq``: (daily, weekly) for sub-daily data, else one."""
    daily = steps_per_day(freq)
    if daily is not None:
        return (daily, 7 * daily)
    name = _offset(freq).rule_code.split("-")[0]
    return (_BY_NAME.get(name, 1),)


def seasonal_naive_error(train: list[np.ndarray], m: int) -> float:
    """Mean absolute in-sample seasonal-naive error with period ``m``, each series scaled by its std."""
    errs = []
    for y in train:
        if len(y) <= m:
            continue
        scale = float(np.std(y)) or 1.0
        errs.append(np.abs(y[m:] - y[:-m]).mean() / scale)
    return float(np.mean(errs)) if errs else float("inf")


def seasonal_period(freq: str | BaseOffset, train: list[np.ndarray], longest: int | None = None) -> Choice:
    """The seasonal period for ``evaluate.seasonal_period: auto`` from the frequency and the train
    rows; a weekly candidate longer than ``longest`` (the input window) is not considered."""
    cands = period_candidates(freq)
    if longest is not None and len(cands) > 1 and cands[1] > longest:
        cands = cands[:1]
    label = _offset(freq).freqstr
    if len(cands) == 1:
        return Choice(cands[0], f"{cands[0]} for frequency {label!r}")
    daily, weekly = cands
    shortest = min((len(y) for y in train), default=0)
    if shortest < MIN_CYCLES * weekly:
        return Choice(daily, f"{daily} steps a day at {label!r} (too few weeks of train rows to test weekly)")
    e_day, e_week = seasonal_naive_error(train, daily), seasonal_naive_error(train, weekly)
    if e_week <= (1 - WEEKLY_GAIN) * e_day:
        return Choice(
            weekly,
            f"{weekly} steps a week at {label!r}: the weekly seasonal naive's train error is "
            f"{e_week / e_day:.0%} of the daily one's",
        )
    return Choice(
        daily,
        f"{daily} steps a day at {label!r}: the weekly seasonal naive's train error is "
        f"{e_week / e_day:.0%} of the daily one's (not {1 - WEEKLY_GAIN:.0%} or less)",
    )


def panel_period(setting: int | str, panel: Panel) -> Choice:
    """``evaluate.seasonal_period`` for ``panel``: the number set, or ``auto`` resolved on its train rows."""
    if setting != "auto":
        return Choice(int(setting), "set in params.yaml (evaluate.seasonal_period)")
    bounds = panel.part_bounds("train")
    train = [panel.series(i)[a:b, 0] for i, (a, b) in enumerate(bounds)]
    return seasonal_period(panel.freq, train, longest=panel.input_size)


def input_size(freq: str | BaseOffset, period: int, horizon: int, shortest_train: int) -> Choice:
    """The lookback for ``window.input_size: auto`` (see the module doc)."""
    daily = steps_per_day(freq)
    if daily is not None:
        want, basis = INPUT_CYCLES * daily, f"{INPUT_CYCLES} days of {daily} steps"
    else:
        want, basis = INPUT_PERIODS * period, f"{INPUT_PERIODS} seasonal periods of {period}"
    want = max(want, period, 2 * horizon)
    cap = shortest_train - horizon - MIN_TRAIN_WINDOWS + 1
    if cap < want:
        floor = max(horizon, 1)
        value = max(cap, floor)
        return Choice(
            value,
            f"{value} steps: {basis} would leave the shortest series' {shortest_train} train rows "
            f"fewer than {MIN_TRAIN_WINDOWS} windows",
        )
    return Choice(want, f"{want} steps: {basis} (at least the seasonal period and twice the horizon)")


__all__ = [
    "Choice",
    "input_size",
    "panel_period",
    "period_candidates",
    "seasonal_naive_error",
    "seasonal_period",
    "steps_per_day",
]
