"""The model card: a trained model's dataset facts, in one typed home inside the model file.

Horizon, input size, columns, the id and timestamp columns, the frequency, every series'
train-row scaler, the interval calibration and the resolved training config are written once,
by the train stage, into the model file (its metadata is exactly ``card.to_extra()``), and read
from there by evaluate, backtest, register, forecast, ``tsforecast predict`` and the pyfunc.
:meth:`ModelCard.check` is the one consistency check between a card and params.yaml.

One series is a panel of one: its card has ``id_column=None`` (the data names no id column;
readers add the implicit one, :mod:`tsforecast.dataset.long`) and one scaler, under the
target's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt, model_validator

from tsforecast.errors import DataError, ModelLoadError
from tsforecast.evaluation.intervals import Calibration


class SeriesScalers(BaseModel):
    """Each series' train-row mean and std, (S, C) as nested lists, and the series ids (S,)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ids: list[Any]
    mean: list[list[float]]
    std: list[list[float]]

    @model_validator(mode="after")
    def _shapes(self) -> SeriesScalers:
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        if mean.ndim != 2 or mean.shape != std.shape or mean.shape[0] != len(self.ids):
            raise ValueError(
                f"series_scalers hold mean {mean.shape} and std {std.shape} for {len(self.ids)} ids; "
                "expected (series, columns) for both"
            )
        return self

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std as float64 arrays, (S, C) each."""
        return np.asarray(self.mean, dtype=np.float64), np.asarray(self.std, dtype=np.float64)


class ModelCard(BaseModel):
    """What a model knows of the data it was trained on (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: PositiveInt
    horizon: PositiveInt
    columns: tuple[str, ...]  # target first, then covariates
    timestamp_column: str
    id_column: str | None  # the data's id column; None: one series (the implicit id)
    freq: str
    series_scalers: SeriesScalers
    intervals: dict[str, Any] = {}  # Calibration.to_dict(); empty: no intervals
    config: dict[str, Any] = {}  # the resolved window/model/train sections it was trained with
    best_epoch: int = 0
    best_val_loss: float = float("nan")

    @property
    def n_series(self) -> int:
        return len(self.series_scalers.ids)

    @property
    def target(self) -> str:
        return self.columns[0]

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_extra({"intervals": self.intervals})

    @classmethod
    def from_extra(cls, extra: dict[str, Any], where: str = "the model file") -> ModelCard:
        """The card in a model file's metadata; a file without one fails naming the fix."""
        try:
            return cls.model_validate(extra)
        except ValueError as e:
            first = str(e).splitlines()
            detail = "; ".join(line.strip() for line in first[1:3]) or str(e)
            raise ModelLoadError(
                f"{where}: its model card is missing or damaged ({detail}); "
                "it was written by another tsforecast version - retrain with `tsforecast train` (or `dvc repro`)"
            ) from None

    def to_extra(self) -> dict[str, Any]:
        """The model file's metadata: the card, JSON-able."""
        return self.model_dump(mode="json")

    def check(
        self,
        *,
        id_column: str | None | object = ...,
        columns: list[str] | tuple[str, ...] | None = None,
        horizon: int | None = None,
        input_size: int | None = None,
        where: str = "the model",
        fix: str = "run `dvc repro` so train sees the same data and params",
    ) -> None:
        """The one consistency check of a card against params.yaml: every mismatch named at once."""
        wanted = {
            "data.id_column": (id_column, self.id_column, id_column is not ...),
            "data.target + data.covariates": (
                list(columns) if columns is not None else None,
                list(self.columns),
                columns is not None,
            ),
            "window.horizon": (horizon, self.horizon, horizon is not None),
            "window.input_size": (input_size, self.input_size, input_size is not None),
        }
        bad = [
            f"{key} is {want!r} but {where} was trained with {have!r}"
            for key, (want, have, asked) in wanted.items()
            if asked and want != have
        ]
        if bad:
            raise DataError(f"{'; '.join(bad)}; {fix}")


__all__ = ["ModelCard", "SeriesScalers"]
