"""``tsforecast promote VERSION``: move the champion alias by hand.

It refuses a change of task identity unless forced (clients of ``models:/<name>@champion`` would
get a different forecast), and records who, when and why as the version's
``tsforecast.promotion`` tag.
"""

from __future__ import annotations

import getpass
import logging
import time
from dataclasses import dataclass
from typing import Any

from tsforecast.config import RegisterConfig
from tsforecast.errors import RegistryError
from tsforecast.paths import Paths
from tsforecast.registry.gate import alias_version
from tsforecast.registry.lineage import identity_from_tags
from tsforecast.registry.tracking import mlflow_context, tracking_uri, with_retries
from tsforecast.registry.types import PROMOTED_BY_TAG, PROMOTION_TAG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteResult:
    """What ``tsforecast promote`` did."""

    model_name: str
    version: int
    alias: str
    previous_version: int | None
    forced: bool
    note: str


def _promote_once(
    client: Any, name: str, version: int, alias: str, challenger_alias: str, force: bool, why: str
) -> PromoteResult:
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise
        found = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        raise RegistryError(
            f"model {name!r} has no version {version}; its versions are {found or 'none'}"
        ) from None
    holder = alias_version(client, name, alias)
    if holder == version:
        return PromoteResult(name, version, alias, holder, False, f"v{version} already holds @{alias}")
    mine = identity_from_tags(mv.tags or {})
    crossing = False
    if holder is not None:
        theirs = identity_from_tags(client.get_model_version(name, str(holder)).tags or {})
        crossing = not mine.same_task(theirs)
        if crossing and not force:
            diff = "; ".join(mine.differences(theirs, f"v{version}", f"v{holder}"))
            raise RegistryError(
                f"v{version} is another task than @{alias} v{holder} ({diff}): "
                f"clients of models:/{name}@{alias} would get a different forecast - pass --force to "
                f"promote it anyway, or register it under another register.model_name"
            )
    client.set_registered_model_alias(name, alias, str(version))
    if alias_version(client, name, challenger_alias) == version:
        client.delete_registered_model_alias(name, challenger_alias)
    user = getpass.getuser()
    was = f"was v{holder}" if holder is not None else "no version held it"
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    forced = " across task identities (--force)" if crossing else ""
    note = f"promoted to @{alias} by {user} at {when} ({was}){forced}: {why}"
    client.set_model_version_tag(name, str(version), PROMOTION_TAG, note)
    client.set_model_version_tag(name, str(version), PROMOTED_BY_TAG, user)
    return PromoteResult(name, version, alias, holder, crossing, note)


def run_promote(
    version: int,
    register: RegisterConfig,
    paths: Paths,
    *,
    model_name: str | None = None,
    alias: str | None = None,
    force: bool = False,
    reason: str = "deliberate promotion",
) -> PromoteResult:
    """Move ``alias`` (default ``register.alias``) of ``model_name`` to ``version`` by hand.

    Refuses a change of task identity unless ``force``; records who, when and why as the
    version's ``tsforecast.promotion`` tag.
    """
    import mlflow
    from mlflow import MlflowClient

    name, alias = model_name or register.model_name, alias or register.alias
    uri = tracking_uri(paths)
    with mlflow_context(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=mlflow.get_registry_uri())
        result = with_retries(
            lambda: _promote_once(client, name, version, alias, register.challenger_alias, force, reason),
            uri,
            register.max_retries,
            register.retry_backoff_s,
            what="promote",
        )
    log.info("%s v%d: %s", name, version, result.note)
    return result


__all__ = ["PromoteResult", "run_promote"]
