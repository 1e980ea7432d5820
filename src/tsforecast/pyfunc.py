"""The MLflow pyfunc wrapper: what ``mlflow.pyfunc.load_model("models:/<name>@champion")`` returns.

The model is logged "from code" (no pickle): the logged model holds :data:`MODEL_CODE`, a
three-line script that instantiates :class:`TsForecastPyfunc` from the installed package
(``pip install`` it where the model is loaded), and the weights as the ``model`` artifact
(``models/model.pt``). ``load_context`` reads that file with
:func:`tsforecast.model.load_model` (``weights_only``: no code runs from the file); the
scaler, columns and frequency come from the metadata saved beside the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from tsforecast.predict import ForecastSpec, forecast

ARTIFACT_KEY = "model"
MODEL_CODE = '''"""tsforecast's MLflow model, logged from code: the class comes from the installed package."""

import mlflow

from tsforecast.pyfunc import TsForecastPyfunc

mlflow.models.set_model(TsForecastPyfunc())
'''


def write_model_code(folder: Path) -> Path:
    """Write :data:`MODEL_CODE` into ``folder``; the path is what ``log_model(python_model=...)`` takes."""
    path = Path(folder) / "tsforecast_model.py"
    path.write_text(MODEL_CODE)
    return path


class TsForecastPyfunc(mlflow.pyfunc.PythonModel):
    """History in (timestamp, target, covariates; >= input_size rows), next horizon steps out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        from tsforecast.model import load_model

        self.model, extra = load_model(context.artifacts[ARTIFACT_KEY])
        self.spec = ForecastSpec.from_model(self.model, extra)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``model_input``: a history frame; returns columns ``timestamp`` and ``forecast``."""
        if isinstance(model_input, dict):  # a served dict of columns
            model_input = pd.DataFrame(model_input)
        return forecast(self.model, self.spec, model_input)


__all__ = ["MODEL_CODE", "TsForecastPyfunc", "write_model_code"]
