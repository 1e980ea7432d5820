"""Execution settings: where the work runs, never what it computes.

The ``orchestration`` section of params.yaml (the Dask scheduler of a panel's per-series work,
the Prefect work pool of training) changes no number a stage writes. So it is in no stage's
DVC ``params:`` (pointing a run at a cluster, or back, re-runs nothing and leaves ``dvc status``
clean), and an environment variable may override it for one run or one machine:

    TSFORECAST_DASK_ADDRESS=tcp://10.0.0.5:8786 dvc repro    # this run's per-series work on that cluster
    TSFORECAST_DASK_ADDRESS=null dvc repro                   # this machine, whatever params.yaml says

The stage table (:mod:`tsforecast.stages`, which names these sections: ``EXECUTION_SECTIONS``)
passes the resolved section to the stage functions that take it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tsforecast.config import OrchestrationConfig, scheduler_address_problem
from tsforecast.errors import ConfigError

#: Overrides ``orchestration.dask_address``: ``tcp://host:port``, or ``null`` / empty for this machine.
DASK_ADDRESS_ENV = "TSFORECAST_DASK_ADDRESS"
LOCAL_WORDS = frozenset({"", "null", "none", "local"})


def dask_address_override(environ: Mapping[str, str] | None = None) -> tuple[bool, str | None]:
    """``(set, address)`` from :data:`DASK_ADDRESS_ENV`; a value that is no scheduler URL is a ConfigError."""
    env = os.environ if environ is None else environ
    if DASK_ADDRESS_ENV not in env:
        return False, None
    text = env[DASK_ADDRESS_ENV].strip()
    address = None if text.lower() in LOCAL_WORDS else text
    problem = scheduler_address_problem(address)
    if problem:
        raise ConfigError(f"{DASK_ADDRESS_ENV}={problem}")
    return True, address


def resolve_orchestration(
    orchestration: OrchestrationConfig, environ: Mapping[str, str] | None = None
) -> OrchestrationConfig:
    """``orchestration`` with the environment's overrides applied (params.yaml's values otherwise)."""
    is_set, address = dask_address_override(environ)
    if not is_set or address == orchestration.dask_address:
        return orchestration
    return orchestration.model_copy(update={"dask_address": address})


__all__ = [
    "DASK_ADDRESS_ENV",
    "dask_address_override",
    "resolve_orchestration",
]
