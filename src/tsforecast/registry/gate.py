"""The champion gate: a pure :func:`decide` and the compare-and-set :func:`apply_alias`.

The ``register.alias`` alias (``champion``) moves to a new version only when

1. the version has the champion's task identity (:mod:`tsforecast.registry.lineage`); a version of
   another task is registered but takes no alias, and the log says how to go on;
2. its test ``mse_scaled`` beats the repeat_last baseline's on the same windows;
3. it beats the champion's score on the same test windows (the champion is re-scored when
   the rows changed; a champion that cannot be re-scored keeps the alias);
4. the run is not a ``dvc exp run`` experiment (``DVC_EXP_NAME`` set): those get at most
   ``register.challenger_alias``.

Otherwise the version gets ``register.challenger_alias`` and the reason names both numbers.

A panel (one global model over many series) is gated on the same ``mse_scaled``: there it is
pooled over every series' test windows, each series on its own train-fit scale, so it is as
scale-free across series as OWA, it is the loss the model was trained on, and a champion can be
re-scored on the contender's exact windows with the same code. OWA (logged, tagged and in the
summary) is a ratio to Naive2 on one test set, so it moves with the data and is unstable for
series whose values sit near zero (sMAPE) or whose in-sample error is tiny (MASE).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tsforecast.registry.types import IdentityView

log = logging.getLogger(__name__)

Role = Literal["champion", "challenger", "none"]


@dataclass(frozen=True)
class Contender:
    """The version just registered."""

    version: int
    mse_scaled: float
    baseline_mse_scaled: float  # repeat_last on the same windows
    identity: IdentityView


@dataclass(frozen=True)
class Incumbent:
    """The version holding the alias, scored on the contender's test windows when possible."""

    version: int
    identity: IdentityView
    mse_scaled: float | None  # None: it cannot be scored on these windows (``note`` says why)
    note: str = ""  # how the score was obtained, or why there is none


@dataclass(frozen=True)
class Decision:
    """Which alias the contender gets (``none``: registered only) and why, in one line."""

    role: Role
    reason: str

    @property
    def champion(self) -> bool:
        return self.role == "champion"


def decide(
    champion: Incumbent | None,
    candidate: Contender,
    *,
    alias: str = "champion",
    challenger_alias: str = "challenger",
    experiment: str | None = None,
) -> Decision:
    """Should ``candidate`` hold ``alias`` rather than ``champion``? Pure: no I/O."""
    v, c, b = candidate.version, candidate.mse_scaled, candidate.baseline_mse_scaled
    me = f"v{v}: test mse_scaled {c:.5g}"
    if champion is not None and champion.version == v:
        return Decision("champion", f"champion: {me} already holds the alias")
    if champion is not None and not candidate.identity.same_task(champion.identity):
        diff = "; ".join(candidate.identity.differences(champion.identity, f"v{v}", f"v{champion.version}"))
        return Decision(
            "none",
            f"registered only: v{v} is another task than {alias} v{champion.version} ({diff}), so the {alias} alias stays on v{champion.version}. To serve this "
            f"model, set register.model_name to a new name and rerun, or promote it deliberately with "
            f"`tsforecast promote {v} --force`",
        )
    if not c < b:
        return Decision(
            "challenger",
            f"challenger: {me} does not beat the repeat_last baseline's {b:.5g} on the same test "
            "windows; a model that does not beat repeat_last is never champion",
        )
    if champion is None:
        wins = f"{me} beats the repeat_last baseline's {b:.5g}; there was no {alias} yet"
    elif champion.mse_scaled is None:
        return Decision(
            "challenger",
            f"challenger: {alias} v{champion.version} keeps the alias: it cannot be re-scored on these "
            f"test windows ({champion.note}), so {me} cannot be compared with it; to replace it "
            f"anyway: `tsforecast promote {v}`",
        )
    elif c < champion.mse_scaled:
        wins = (
            f"{me} beats {alias} v{champion.version}'s {champion.mse_scaled:.5g}{champion.note} and the "
            f"repeat_last baseline's {b:.5g} on the same test windows"
        )
    else:
        return Decision(
            "challenger",
            f"challenger: {me} does not beat {alias} v{champion.version}'s "
            f"{champion.mse_scaled:.5g}{champion.note} on the same test windows",
        )
    if experiment:
        return Decision(
            "challenger",
            f"challenger: {wins}, but runs under `dvc exp run` (DVC_EXP_NAME={experiment}) get at most "
            f"the {challenger_alias} alias; to make it {alias}: `tsforecast promote {v}`",
        )
    return Decision("champion", f"champion: {wins}")


# ---------------------------------------------------------------------------- compare-and-set


def alias_version(client: Any, name: str, alias: str) -> int | None:
    """The version holding ``alias`` of model ``name``, None when no version does."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


# A database's refusal of a second row for the same alias (sqlite, PostgreSQL, MySQL wording):
# MLflow upserts an alias as read-then-insert, so two registrations setting one alias at the same
# instant make the later insert fail. It is a lost compare-and-set, not an error: re-read, decide.
_CONCURRENT_WRITE = ("UNIQUE constraint failed", "duplicate key value", "Duplicate entry")


def set_alias(client: Any, name: str, alias: str, version: int) -> bool:
    """Point ``alias`` at ``version``; False when a concurrent registration set it at that instant."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as e:
        if not any(marker in str(e) for marker in _CONCURRENT_WRITE):
            raise
        log.info(
            "the %s alias of %s was set by another registration at the same instant: re-reading", alias, name
        )
        return False
    return True


def _settle(
    client: Any,
    name: str,
    alias: str,
    version: int,
    judge: Callable[[int | None], Decision],
    decision: Decision,
    holder: int | None,
) -> Decision:
    """Without a lock (a remote server): re-read the alias until seen stable twice; correct it if
    a concurrent registration moved it to a worse version."""
    stable, rounds = 0, 0
    while stable < 2 and rounds < 12:
        rounds += 1
        time.sleep(random.uniform(0.2, 0.6))
        now = alias_version(client, name, alias)
        expected = version if decision.champion else holder
        if now == expected:
            stable += 1
            continue
        stable, holder = 0, now
        decision = judge(holder)
        if decision.champion and holder != version:
            log.info(
                "the %s alias moved to v%s meanwhile, but v%d is better: moving it back", alias, now, version
            )
            set_alias(client, name, alias, version)  # lost again: the next round re-reads it
    return decision


def apply_alias(
    client: Any,
    name: str,
    aliases: tuple[str, str],
    version: int,
    judge: Callable[[int | None], Decision],
    locked: bool,
) -> tuple[Decision, int | None]:
    """Give ``version`` the alias ``judge`` decides; returns (decision, the holder before).

    ``aliases`` is (alias, challenger alias). Compare-and-set: the holder is re-read just
    before the alias moves and the decision redone if it changed. Without a lock (a remote
    server), the alias is watched for a moment after and corrected when a concurrent
    registration moved it to a worse version.
    """
    alias, challenger_alias = aliases
    holder = alias_version(client, name, alias)
    previous = holder
    decision = Decision("none", "")
    for _ in range(20):
        decision = judge(holder)
        if not decision.champion or holder == version:
            break
        now = alias_version(client, name, alias)
        if now != holder:  # someone moved it while we compared: decide again against them
            holder = now
            continue
        if set_alias(client, name, alias, version):
            break
        holder = alias_version(client, name, alias)  # a concurrent registration won the write
    if not locked:
        decision = _settle(client, name, alias, version, judge, decision, holder)
    if decision.champion:
        if alias_version(client, name, challenger_alias) == version:
            client.delete_registered_model_alias(name, challenger_alias)
    elif decision.role == "challenger":
        for _ in range(5):  # the challenger alias is last-writer-wins: only a lost write is retried
            if set_alias(client, name, challenger_alias, version):
                break
    return decision, previous


__all__ = ["Contender", "Decision", "Incumbent", "alias_version", "apply_alias", "decide", "set_alias"]
