"""The MLflow pyfunc wrapper: what ``mlflow.pyfunc.load_model("models:/<name>@champion")`` returns.

The model is logged "from code" (no pickle): the logged model holds :data:`MODEL_CODE`, a
three-line script that instantiates :class:`TsForecastPyfunc` from the installed package
(``pip install`` it where the model is loaded), and the weights as the ``model`` artifact
(``models/model.pt``). ``load_context`` reads that file with
:func:`tsforecast.training.model.load_model` (``weights_only``: no code runs from the file); the
columns, frequency, per-series scalers and interval calibration come from its model card. The
forecast itself is :func:`tsforecast.forecasting.core.forecast_frame`.

Served (``mlflow models serve``), the model answers ``application/json``
(``dataframe_split`` / ``dataframe_records``, optional ``"params": {"levels": [80, 95]}``)
and ``text/csv``; in Python, ``predict(df)`` takes the frame as it is, a datetime timestamp
column (as ``data/validated/`` holds it) or text. A panel model (trained with ``data.id_column``)
takes the same with its id column and answers for every series sent; an id it was not trained on
is a 400 naming it.

**No input schema.** The signature declares the outputs and the ``levels`` param, not the inputs:
MLflow enforces an input schema before ``predict`` runs, and no column type takes every caller's
timestamps: ``string`` refuses a datetime column ("Can not safely convert datetime64[us] to <U0"),
``datetime`` cannot be parsed from a CSV body (pandas' ``read_csv`` takes no datetime dtype) and
refuses text from Python, ``Any`` fails CSV parsing too. The model checks its input itself
(:mod:`tsforecast.forecasting.history`), naming every missing column, short or gappy series and
bad value; the logged input example shows the columns a request holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from tsforecast.dataset.long import frame_columns, id_column, with_series_id, without_series_id
from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, check_levels, level_name
from tsforecast.forecasting.core import forecast_frame
from tsforecast.training.card import ModelCard

ARTIFACT_KEY = "model"
LEVELS_PARAM = "levels"
MODEL_CODE = '''"""tsforecast's MLflow model, logged from code: the class comes from the installed package."""

import mlflow

from tsforecast.registry.pyfunc import TsForecastPyfunc

mlflow.models.set_model(TsForecastPyfunc())
'''


def write_model_code(folder: Path) -> Path:
    """Write :data:`MODEL_CODE` into ``folder``; the path is what ``log_model(python_model=...)`` takes."""
    path = Path(folder) / "tsforecast_model.py"
    path.write_text(MODEL_CODE)
    return path


class ForecastInputError(MlflowException):
    """A bad history (too short, a gap, a missing column): HTTP 400 with our one line as ``message``.

    MLflow's scoring server prefixes a predict error's message with the whole input frame
    (``Failed to predict data '<frame>'. \\nError: <message>``); this class keeps the part after
    ``Error:`` so the response's ``message`` is exactly our line.
    """

    _PREFIX_END = "\nError: "

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property  # type: ignore[override]
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = str(value).rsplit(self._PREFIX_END, 1)[-1]


def _output_ids(card: ModelCard) -> list[Any]:
    """The answer's id column (none for one series): integer ids as long, any other as text."""
    from mlflow.types import ColSpec, DataType

    integer = all(isinstance(i, int) and not isinstance(i, bool) for i in card.series_scalers.ids)
    return [ColSpec(DataType.long if integer else DataType.string, c) for c in frame_columns(card)]


def model_signature(card: ModelCard, levels: tuple[float, ...] | None = None) -> Any:
    """Outputs: [id column,] timestamp, forecast, ``lo_<l>``/``hi_<l>`` per default level; param
    ``levels`` (percent, a list). No input schema (see the module doc)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    levels = levels if levels is not None else card.calibration.default_levels
    bounds = [ColSpec(DataType.double, f"{side}_{level_name(lv)}") for lv in levels for side in ("lo", "hi")]
    outputs = Schema(
        [
            *_output_ids(card),
            ColSpec(DataType.datetime, "timestamp"),
            ColSpec(DataType.double, "forecast"),
            *bounds,
        ]
    )
    params = ParamSchema([ParamSpec(LEVELS_PARAM, DataType.double, [float(v) for v in levels], (-1,))])
    return ModelSignature(inputs=None, outputs=outputs, params=params)


EXAMPLE_SERIES = 2  # the input example: the last input_size rows of the first series (two for a panel)


def serving_example(history: pd.DataFrame, card: ModelCard) -> pd.DataFrame:
    """The last ``input_size`` rows of the first :data:`EXAMPLE_SERIES` series of ``history`` (the
    validated frame), timestamps as ISO 8601 text: the logged input example, shaped as a request."""
    ts_col = card.timestamp_column
    long = with_series_id(history, card)
    ids = id_column(card)
    first = list(pd.unique(long[ids]))[:EXAMPLE_SERIES]
    rows = long[long[ids].isin(first)].groupby(ids, sort=False, observed=True).tail(card.input_size)
    example = without_series_id(rows, card)[frame_columns(card, ts_col, *card.columns)].reset_index(drop=True)
    for c in frame_columns(card):  # plain ids, as a request holds them
        if isinstance(example[c].dtype, pd.CategoricalDtype):
            example[c] = example[c].astype(example[c].cat.categories.dtype)
    example[ts_col] = pd.DatetimeIndex(example[ts_col]).map(lambda t: t.isoformat())
    for c in card.columns:
        example[c] = example[c].astype("float64")
    return example


class TsForecastPyfunc(mlflow.pyfunc.PythonModel):
    """History in (timestamp, target, covariates; >= input_size rows), next horizon steps out.

    A panel model takes a long frame with its id column (>= input_size rows of each known
    series) and returns the id column first and ``horizon`` rows per series."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from tsforecast.training.model import load_model

        path = context.artifacts[ARTIFACT_KEY]
        self.model, extra = load_model(path)
        self.card = ModelCard.from_extra(extra, where=str(path))

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``model_input``: a history frame; returns ``timestamp``, ``forecast``, ``lo_<l>``, ``hi_<l>``.

        ``params={"levels": [80, 95]}`` picks the interval levels (default: the model's, [80]).
        """
        if isinstance(model_input, dict):  # a served dict of columns
            model_input = pd.DataFrame(model_input)
        try:
            raw = (params or {}).get(LEVELS_PARAM)
            levels = None if raw is None else check_levels(list(raw), f"params.{LEVELS_PARAM}")
            return forecast_frame(self.model, self.card, model_input, levels)
        except (DataError, ConfigError) as e:
            raise ForecastInputError(str(e)) from None


__all__ = [
    "DEFAULT_LEVELS",
    "MODEL_CODE",
    "ForecastInputError",
    "TsForecastPyfunc",
    "model_signature",
    "serving_example",
    "write_model_code",
]
