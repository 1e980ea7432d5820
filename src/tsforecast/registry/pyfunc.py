"""The MLflow pyfunc wrapper: what ``mlflow.pyfunc.load_model("models:/<name>@champion")`` returns.

The model is logged "from code" (no pickle): the logged model holds :data:`MODEL_CODE`, a
three-line script that instantiates :class:`TsForecastPyfunc` from the installed package
(``pip install`` it where the model is loaded), and the weights as the ``model`` artifact
(``models/model.pt``). ``load_context`` reads that file with
:func:`tsforecast.training.model.load_model` (``weights_only``: no code runs from the file); the
scaler, columns, frequency and interval calibration come from the metadata saved beside
the weights. The forecast itself is :func:`tsforecast.forecasting.core.forecast_frame`.

Served (``mlflow models serve``), the model answers ``application/json``
(``dataframe_split`` / ``dataframe_records``, optional ``"params": {"levels": [80, 95]}``)
and ``text/csv``. A panel model (trained with ``data.id_column``) takes the same with its id
column and answers for every series sent; an id it was not trained on is a 400 naming it.
The signature declares the timestamp column as text (ISO 8601): both
content types carry text, and CSV cannot be parsed into a datetime column by MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from tsforecast.errors import ConfigError, DataError
from tsforecast.evaluation.intervals import DEFAULT_LEVELS, Calibration, check_levels, level_name
from tsforecast.forecasting.core import forecast_frame

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


def _id_spec(extra: dict[str, Any]) -> list[Any]:
    """A panel model's id column: integer ids as long, any other as text; [] for one series."""
    from mlflow.types import ColSpec, DataType

    if not extra.get("id_column"):
        return []
    ids = extra["series_scalers"]["ids"]
    integer = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    return [ColSpec(DataType.long if integer else DataType.string, str(extra["id_column"]))]


def model_signature(extra: dict[str, Any], levels: tuple[float, ...] | None = None) -> Any:
    """Inputs: timestamp (ISO 8601 text), target and covariates (double). Outputs: timestamp,
    forecast, ``lo_<l>``/``hi_<l>`` per default level. Param ``levels`` (percent, a list).
    A panel model also takes and returns its id column, first."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

    levels = levels if levels is not None else Calibration.from_extra(extra).default_levels
    ts_col = str(extra["timestamp_column"])
    ids = _id_spec(extra)
    inputs = Schema(
        [*ids, ColSpec(DataType.string, ts_col), *[ColSpec(DataType.double, c) for c in extra["columns"]]]
    )
    bounds = [ColSpec(DataType.double, f"{side}_{level_name(lv)}") for lv in levels for side in ("lo", "hi")]
    outputs = Schema(
        [*ids, ColSpec(DataType.datetime, "timestamp"), ColSpec(DataType.double, "forecast"), *bounds]
    )
    params = ParamSchema([ParamSpec(LEVELS_PARAM, DataType.double, [float(v) for v in levels], (-1,))])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


EXAMPLE_SERIES = 2  # a panel's input example: the last input_size rows of its first series


def serving_example(history: pd.DataFrame, extra: dict[str, Any], input_size: int) -> pd.DataFrame:
    """The last ``input_size`` rows, timestamps as ISO 8601 text: the logged input example
    (for a panel, of each of its first :data:`EXAMPLE_SERIES` series, with the id column)."""
    ts_col = str(extra["timestamp_column"])
    id_col = extra.get("id_column")
    if id_col:
        first = list(pd.unique(history[id_col]))[:EXAMPLE_SERIES]
        rows = (
            history[history[id_col].isin(first)].groupby(id_col, sort=False, observed=True).tail(input_size)
        )
        example = rows[[id_col, ts_col, *extra["columns"]]].reset_index(drop=True)
        if isinstance(example[id_col].dtype, pd.CategoricalDtype):  # plain ids, as a request holds them
            example[id_col] = example[id_col].astype(example[id_col].cat.categories.dtype)
    else:
        example = history[[ts_col, *extra["columns"]]].iloc[-input_size:].reset_index(drop=True)
    example[ts_col] = pd.DatetimeIndex(example[ts_col]).map(lambda t: t.isoformat())
    for c in extra["columns"]:
        example[c] = example[c].astype("float64")
    return example


class TsForecastPyfunc(mlflow.pyfunc.PythonModel):
    """History in (timestamp, target, covariates; >= input_size rows), next horizon steps out.

    A panel model takes a long frame with its id column (>= input_size rows of each known
    series) and returns the id column first and ``horizon`` rows per series."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from tsforecast.training.model import load_model

        self.model, self.extra = load_model(context.artifacts[ARTIFACT_KEY])

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
            return forecast_frame(self.model, self.extra, model_input, levels)
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
