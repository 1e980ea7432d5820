"""The nightly retrain decision (pure): one :class:`~tsforecast.monitoring.types.Check` per rule.

Retrain when any of these fires, otherwise forecast with the champion:

* **champion**: there is no champion yet (nothing delivered a forecast): train one;
* **realized**: the champion's realized ``mse_scaled``, pooled over its last ``monitor.recent``
  scored origins, was above the expected upper edge for the last ``monitor.patience`` origins in
  a row (each origin's pooled value counts once, so one bad day alone is not enough unless
  ``patience`` is 1, and a bad day keeps weighing for ``recent`` origins);
* **drift**: more than ``monitor.drift_share`` of the series drifted past a threshold;
* **age**: the champion's training data ended more than ``monitor.max_age`` before the newest row.

Every check says what it measured and against what, so the reasons of a decision to keep the
champion are as explicit as those of a decision to retrain. The gate still decides the alias
after a retrain: a retrain only makes a challenger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsforecast.monitoring.types import Check, Decision, Expected


def champion_check(champion: str | None) -> Check:
    """No champion delivered a forecast yet: the nightly run trains one."""
    if champion is None:
        return Check("champion", True, "no champion: no forecast has been delivered yet, so train one")
    return Check("champion", False, f"champion {_v(champion)} delivers the forecasts")


def streak_above(rolling: Sequence[float], upper: float) -> int:
    """How many of the last values of ``rolling`` are above ``upper``, in a row."""
    n = 0
    for value in reversed(list(rolling)):
        if not (np.isfinite(value) and value > upper):
            break
        n += 1
    return n


def realized_check(
    champion: str | None, rolling: Sequence[float], expected: Expected | None, recent: int, patience: int
) -> Check:
    """The realized error against the expected band (see the module doc)."""
    if champion is None:
        return Check("realized", False, "no champion yet: nothing to score")
    if expected is None:
        return Check(
            "realized",
            False,
            f"no expected band for {_v(champion)}: no backtest of it was found (run the backtest stage "
            "before register); the realized error is reported but cannot trigger a retrain",
        )
    if len(rolling) == 0:
        return Check(
            "realized", False, f"none of {_v(champion)}'s forecasts has been scored yet", None, expected.upper
        )
    last = float(rolling[-1])
    streak = streak_above(rolling, expected.upper)
    pooled = f"realized mse_scaled {last:.4g} (pooled over the last {min(recent, len(rolling))} origins)"
    if streak >= patience:
        detail = (
            f"{pooled} stayed above the expected upper {expected.upper:.4g} for {streak} origin(s) in a row "
            f"(monitor.patience={patience}; backtest mse_scaled {expected.mse_scaled:.4g})"
        )
        return Check("realized", True, detail, last, expected.upper)
    if streak:
        detail = f"{pooled} is above the expected upper {expected.upper:.4g} for {streak} of monitor.patience={patience} origins"
    else:
        detail = f"{pooled} is within the expected band (upper {expected.upper:.4g})"
    return Check("realized", False, detail, last, expected.upper)


def drift_check(summary: dict[str, Any] | None, acted_since: str | None = None) -> Check:
    """Drift past its thresholds in more than the tolerated share of the series.

    ``acted_since``: the data end when the current drift began (the previous decisions found it
    too): it was acted on then, so it does not trigger again every night while the training rows
    catch up with it; the rule re-arms once a night finds no drift.
    """
    if not summary or not summary.get("n_series"):
        why = (summary or {}).get("note") or "no training rows to compare with (data/prepared/ missing)"
        return Check("drift", False, f"drift not measured: {why}")
    limits = summary["thresholds"]
    largest = summary["largest"]
    shown = ", ".join(f"{k} {v:+.3g}" for k, v in largest.items() if v is not None)
    n, total = summary["n_drifted"], summary["n_series"]
    if summary["drifted"] and acted_since is not None:
        detail = (
            f"drift persists in {n} of {total} series (largest {shown}) since {acted_since}, when it was "
            "acted on; it triggers again once a night finds no drift"
        )
        return Check("drift", False, detail, summary["share_drifted"], limits["share"])
    if summary["drifted"]:
        names = ", ".join(f"{s[next(iter(s))]} ({s['drifted']})" for s in summary["series"][:5])
        more = f" and {n - 5} more" if n > 5 else ""
        detail = (
            f"drift in {n} of {total} series ({summary['share_drifted']:.0%} > monitor.drift_share="
            f"{limits['share']:g}): {names}{more}; largest {shown} (thresholds level {limits['level']:g}, "
            f"scale {limits['scale']:g}, profile {limits['profile']:g})"
        )
        return Check("drift", True, detail, summary["share_drifted"], limits["share"])
    detail = f"no drift past the thresholds in {n} of {total} series tolerated; largest {shown}"
    return Check("drift", False, detail, summary["share_drifted"], limits["share"])


def age_check(champion: str | None, age: pd.Timedelta | None, max_age: str | None) -> Check:
    """The champion's training data ended, or it was last challenged by a retrain, more than
    ``max_age`` before the newest row (data time): a rejected retrain restarts the clock."""
    if champion is None or age is None:
        return Check("age", False, "no champion age: nothing delivered yet")
    days = age / pd.Timedelta(days=1)
    if max_age is None:
        return Check(
            "age", False, f"champion {_v(champion)} is {_age(age)} old; monitor.max_age is null", days
        )
    limit = pd.Timedelta(max_age)
    if age > limit:
        detail = (
            f"champion {_v(champion)} is {_age(age)} old: its training data ended (or a retrain last "
            f"challenged it) {_age(age)} before the newest row (monitor.max_age={max_age})"
        )
        return Check("age", True, detail, days, limit / pd.Timedelta(days=1))
    return Check(
        "age", False, f"champion {_v(champion)} is {_age(age)} old (monitor.max_age={max_age})", days,
        limit / pd.Timedelta(days=1),
    )  # fmt: skip


def decide(checks: Sequence[Check]) -> Decision:
    """Retrain when any check fired; the reasons are the fired checks, or why nothing fired."""
    fired = [c.detail for c in checks if c.triggered]
    if fired:
        return Decision(True, fired, list(checks))
    return Decision(False, ["keep the champion: " + "; ".join(c.detail for c in checks)], list(checks))


def _v(version: str) -> str:
    return f"v{version}" if version.isdigit() else version


def _age(age: pd.Timedelta) -> str:
    days = age / pd.Timedelta(days=1)
    return f"{days:.1f} days" if days >= 1 else f"{age / pd.Timedelta(hours=1):.1f} hours"


__all__ = ["age_check", "champion_check", "decide", "drift_check", "realized_check", "streak_above"]
