"""Names the register stage's modules share: MLflow tag keys and small result types.

Below :mod:`tsforecast.registry.lineage`, :mod:`tsforecast.registry.gate`, :mod:`tsforecast.registry.tracking` and
:mod:`tsforecast.registry.register` (it imports none of them), so none of those imports another
just for a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsforecast.dataset.panel import Panel
    from tsforecast.training.card import ModelCard
    from tsforecast.training.model import LSTMForecaster

# ---------------------------------------------------------------------------- tag keys

FINGERPRINT_TAG = "tsforecast.fingerprint"  # one registration: model + metrics + test data + identity
DATA_HASH_TAG = "tsforecast.test_data_hash"  # sha256 of data/prepared/: "the same test windows"
MSE_TAG = "tsforecast.mse_scaled"
RESCORED_TAG = "tsforecast.mse_scaled_on."  # + data hash: a version re-scored on other test data
BASELINE_TAG = "tsforecast.baseline_repeat_last_mse_scaled"
MODEL_URI_TAG = "tsforecast.logged_model_uri"
GATE_TAG = "tsforecast.gate"  # the gate's decision, one line
REPRODUCE_TAG = "tsforecast.reproduce"
IDENTITY_TAG = "tsforecast.identity"  # short hash of the task identity
IDENTITY_FIELD_PREFIX = "tsforecast.identity."  # + field name: one tag per identity field
PROMOTION_TAG = "tsforecast.promotion"  # who moved an alias by hand, when and why
PROMOTED_BY_TAG = "tsforecast.promoted_by"

MODEL_ARTIFACT = "model"
REGISTERED_FILE = "registered.json"
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by `dvc exp run`: such runs get at most the challenger alias


@dataclass(frozen=True)
class Candidate:
    """The stage outputs that register reads, checked against each other."""

    metrics: dict[str, Any]  # metrics/evaluate.json
    mse_scaled: float
    baseline_mse_scaled: float  # repeat_last on the same windows
    seasonal_period: int
    data_hash: str  # of data/prepared/
    fingerprint: str
    model: LSTMForecaster
    card: ModelCard  # the model's dataset facts (horizon, columns, ids, scalers, frequency, ...)
    panel: Panel  # data/prepared/ (one series is a panel of one)


@dataclass(frozen=True)
class IdentityView:
    """A task identity as the registry stores it: the hash and each field as a tag string."""

    hash: str | None  # None: a version registered before identities were recorded
    fields: dict[str, str]

    def differences(self, other: IdentityView, me: str = "this", them: str = "the other") -> list[str]:
        """``["horizon: v3 has 26, v1 has 48", ...]``: the fields that differ, named by ``me``/``them``."""
        if self.hash is None or other.hash is None:
            who = me if self.hash is None else them
            return [f"{who} records no task identity (registered before identities were recorded)"]
        keys = list(dict.fromkeys([*self.fields, *other.fields]))
        out = [
            f"{k}: {me} has {self.fields.get(k, '<unset>')}, {them} has {other.fields.get(k, '<unset>')}"
            for k in keys
            if self.fields.get(k) != other.fields.get(k)
        ]
        return out or [f"identity: {me} has {self.hash}, {them} has {other.hash}"]

    def same_task(self, other: IdentityView) -> bool:
        """True when both record an identity and it is the same."""
        return self.hash is not None and self.hash == other.hash


__all__ = [
    "BASELINE_TAG",
    "DATA_HASH_TAG",
    "EXPERIMENT_ENV",
    "FINGERPRINT_TAG",
    "GATE_TAG",
    "IDENTITY_FIELD_PREFIX",
    "IDENTITY_TAG",
    "MODEL_ARTIFACT",
    "MODEL_URI_TAG",
    "MSE_TAG",
    "PROMOTED_BY_TAG",
    "PROMOTION_TAG",
    "REGISTERED_FILE",
    "REPRODUCE_TAG",
    "RESCORED_TAG",
    "Candidate",
    "IdentityView",
]
