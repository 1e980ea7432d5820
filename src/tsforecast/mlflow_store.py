"""Where MLflow is, and loading a pyfunc from it: shared by ``predict`` and the ``forecast`` stage."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tsforecast.errors import ModelLoadError, RegistryError

if TYPE_CHECKING:
    from tsforecast.paths import Paths


def default_tracking_uri(paths: Paths | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the repo's ``sqlite:///<root>/mlflow.db``."""
    from tsforecast.paths import Paths

    paths = paths or Paths.from_root()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.mlflow_db}"


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Point MLflow's tracking and registry at ``uri`` for the block, then restore.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` (and the registry's
    ``MLFLOW_REGISTRY_URI``) into the environment; both the setting and the variables are
    put back as they were, so one call cannot redirect the next.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    registry = env_before["MLFLOW_REGISTRY_URI"] or uri
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = before
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_pyfunc(model_uri: str, tracking_uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` with errors that name the URI and the store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.pyfunc.load_model(model_uri)
    except MlflowException as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        if "API request to" in first or "Max retries" in first:
            raise RegistryError(f"MLflow at {tracking_uri} is unreachable: {first}") from None
        raise ModelLoadError(
            f"model {model_uri!r} not loadable from {tracking_uri}: {first}. "
            "Register one with `dvc repro` (or `tsforecast register`), or pass --tracking-uri"
        ) from None
    except OSError as e:
        raise ModelLoadError(f"model {model_uri!r}: {e}") from None


def load_forecaster(model_uri: str, tracking_uri: str) -> tuple[Any, dict[str, Any]]:
    """(LSTMForecaster, extra) inside a registered tsforecast pyfunc at ``model_uri``."""
    with tracking(tracking_uri):
        loaded = load_pyfunc(model_uri, tracking_uri)
    inner = loaded.unwrap_python_model()
    model, extra = getattr(inner, "model", None), getattr(inner, "extra", None)
    if model is None or not isinstance(extra, dict):
        raise ModelLoadError(f"model {model_uri!r} is a {type(inner).__name__}, not a tsforecast forecaster")
    return model, extra


__all__ = ["default_tracking_uri", "load_forecaster", "load_pyfunc", "tracking"]
