"""A global (panel) model through the MLflow pyfunc: a long frame in, every known series' forecast out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests.mlflow_fixtures import init_store
from tests.panel_fixtures import ID, TS, H, L, panel_cfg, panel_frame, write_panel_repo
from tsforecast.forecasting.core import forecast_frame
from tsforecast.registry.pyfunc import (
    ARTIFACT_KEY,
    ForecastInputError,
    model_signature,
    serving_example,
    write_model_code,
)
from tsforecast.registry.tracking import tracking
from tsforecast.training import train as train_mod
from tsforecast.training.model import load_model
from tsforecast.training.train import run_train

N_SERIES = 3


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny panel model trained and logged as the tsforecast pyfunc in a private sqlite store."""
    import mlflow

    root = tmp_path_factory.mktemp("panel-pyfunc")
    mp = pytest.MonkeyPatch()
    mp.setenv("TQDM_DISABLE", "1")
    mp.setattr(train_mod, "fast_cpu_math", lambda: None)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        mp.delenv(key)
    cfg = panel_cfg(train__epochs=1)
    frame = panel_frame(N_SERIES)
    paths = write_panel_repo(root, cfg, frame)
    run_train(cfg.window, cfg.model, cfg.train, paths)
    model, extra = load_model(paths.models / "model.pt")
    uri = init_store(root / "mlflow.db")
    with tracking(uri), tempfile.TemporaryDirectory() as tmp:
        mlflow.set_experiment("panel")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(write_model_code(Path(tmp))),
                artifacts={ARTIFACT_KEY: str(paths.models / "model.pt")},
                signature=model_signature(extra),
                input_example=serving_example(frame, extra, L),
            )
        loaded = mlflow.pyfunc.load_model(info.model_uri)
    yield loaded, frame, model, extra, (info.model_uri, uri)
    mp.undo()


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{TS: frame[TS].map(lambda t: t.isoformat())})


def test_the_pyfunc_forecasts_every_series_sent(logged):
    loaded, frame, model, extra, _ = logged
    request = _as_text(frame.groupby(ID, sort=False).tail(L).reset_index(drop=True))
    out = loaded.predict(request)
    assert list(out.columns) == [ID, "timestamp", "forecast", "lo_80", "hi_80"]
    assert len(out) == N_SERIES * H and list(pd.unique(out[ID])) == ["s0", "s1", "s2"]
    expected = forecast_frame(model, extra, frame)
    pd.testing.assert_series_equal(out["forecast"], expected["forecast"], rtol=1e-6)


def test_the_pyfunc_signature_and_example_carry_the_id_column(logged):
    loaded, *_ = logged
    assert loaded.metadata.get_input_schema().input_names()[:2] == [ID, TS]
    assert loaded.metadata.get_output_schema().input_names()[:2] == [ID, "timestamp"]


def test_unknown_ids_are_one_clear_error_naming_them_and_the_known_count(logged):
    loaded, frame, *_ = logged
    stranger = panel_frame(1, ids=["zz"]).tail(L)
    request = _as_text(pd.concat([frame[frame[ID] == "s0"].tail(L), stranger], ignore_index=True))
    with pytest.raises(ForecastInputError, match=r"1 series are not among the model's 3 known series: zz;"):
        loaded.predict(request)


def test_levels_param_picks_the_interval_levels(logged):
    loaded, frame, *_ = logged
    out = loaded.predict(_as_text(frame[frame[ID] == "s1"].tail(L)), params={"levels": [50, 95]})
    assert list(out.columns) == [ID, "timestamp", "forecast", "lo_50", "hi_50", "lo_95", "hi_95"]
    assert len(out) == H


def test_predict_cli_function_forecasts_a_long_csv(logged, tmp_path):
    from tsforecast.forecasting.predict import run_predict

    _, frame, model, extra, (model_uri, uri) = logged
    csv = tmp_path / "history.csv"
    frame.to_csv(csv, index=False)
    summary = run_predict(model_uri, str(csv), str(tmp_path / "out.csv"), tracking_uri=uri)
    out = pd.read_csv(tmp_path / "out.csv")
    assert summary["n_series"] == N_SERIES and summary["horizon"] == H and len(out) == N_SERIES * H
    assert list(out.columns) == [ID, "timestamp", "forecast", "lo_80", "hi_80"]
    expected = forecast_frame(model, extra, frame)
    assert out["forecast"].to_numpy() == pytest.approx(expected["forecast"].to_numpy(), rel=1e-9)
