"""Execution settings (where work runs) and their environment override: tsforecast.parallel."""

from __future__ import annotations

import pytest

from tsforecast.config import OrchestrationConfig
from tsforecast.errors import ConfigError
from tsforecast.parallel import DASK_ADDRESS_ENV, dask_address_override, resolve_orchestration

PARAMS = OrchestrationConfig(train_pool="gpu", dask_address="tcp://10.0.0.1:8786")


def test_without_the_variable_params_yaml_decides() -> None:
    assert dask_address_override({}) == (False, None)
    assert resolve_orchestration(PARAMS, {}) is PARAMS


def test_the_variable_overrides_the_address_and_keeps_the_rest() -> None:
    got = resolve_orchestration(PARAMS, {DASK_ADDRESS_ENV: " tcp://127.0.0.1:8786 "})
    assert got == OrchestrationConfig(train_pool="gpu", dask_address="tcp://127.0.0.1:8786")


@pytest.mark.parametrize("value", ["", "null", "None", "local"])
def test_null_empty_or_local_means_this_machine(value: str) -> None:
    assert resolve_orchestration(PARAMS, {DASK_ADDRESS_ENV: value}).dask_address is None


def test_a_value_that_is_no_scheduler_address_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match=rf"^{DASK_ADDRESS_ENV}='127.0.0.1:8786' is not a scheduler address"
    ):
        resolve_orchestration(PARAMS, {DASK_ADDRESS_ENV: "127.0.0.1:8786"})
