"""Forecasting through the MLflow pyfunc and ``tsforecast predict``: outputs and input checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.mlflow_fixtures import (  # noqa: F401
    Repo,
    clean_env,
    fixture_tiny_repo,
    fixture_tiny_repo_template,
    register,
)
from tsforecast.cli import main
from tsforecast.errors import DataError
from tsforecast.forecasting.core import forecast_frame
from tsforecast.registry.pyfunc import ForecastInputError
from tsforecast.registry.tracking import tracking, tracking_uri
from tsforecast.training.model import load_model

L, H = 24, 6  # the tiny repo's window
COLUMNS = ["timestamp", "forecast", "lo_80", "hi_80"]


def forecast(model: torch.nn.Module, extra: dict, frame: pd.DataFrame) -> pd.DataFrame:
    return forecast_frame(model, extra, frame)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO 8601 text, as CSV and JSON requests (and the signature) carry them."""
    return frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))


@pytest.fixture
def registered(tiny_repo: Repo) -> Repo:
    """The tiny repo with its model registered as champion in its own sqlite store."""
    register(tiny_repo)
    return tiny_repo


@pytest.fixture
def history(tiny_repo: Repo) -> pd.DataFrame:
    """The validated series: timestamp (datetime64), y."""
    return pd.read_parquet(tiny_repo.paths.validated / "data.parquet")


@pytest.fixture
def spec_model(tiny_repo: Repo) -> tuple[dict, torch.nn.Module]:
    model, extra = load_model(tiny_repo.paths.models / "model.pt")
    return extra, model


def load_champion(repo: Repo):
    import mlflow

    with tracking(tracking_uri(repo.paths)):
        return mlflow.pyfunc.load_model("models:/tiny-lstm@champion")


def expected_forecast(repo: Repo, history: pd.DataFrame) -> np.ndarray:
    """The LSTM's own forecast for the last L rows, scaled in and inverse-scaled out by hand."""
    model, extra = load_model(repo.paths.models / "model.pt")
    mean, std = np.asarray(extra["scaler"]["mean"]), np.asarray(extra["scaler"]["std"])
    x = (history[["y"]].to_numpy()[-L:] - mean) / std  # (L, 1)
    with torch.no_grad():
        y = model(torch.tensor(x, dtype=torch.float32)[None])[0].double().numpy()  # (H,)
    return y * std[0] + mean[0]


def test_pyfunc_forecast_matches_the_lstm_output_inverse_scaled(
    registered: Repo, history: pd.DataFrame
) -> None:
    out = load_champion(registered).predict(as_text(history.tail(L)))
    assert list(out.columns) == COLUMNS
    assert len(out) == H
    last = history["timestamp"].iloc[-1]
    assert list(out["timestamp"]) == list(pd.date_range(last, periods=H + 1, freq="h")[1:])
    np.testing.assert_allclose(out["forecast"].to_numpy(), expected_forecast(registered, history), rtol=1e-5)
    assert (out["lo_80"] <= out["forecast"]).all() and (out["forecast"] <= out["hi_80"]).all()
    assert (out["hi_80"] - out["lo_80"]).min() > 0


def test_pyfunc_uses_the_last_input_size_rows_of_a_longer_history(
    registered: Repo, history: pd.DataFrame
) -> None:
    model = load_champion(registered)
    pd.testing.assert_frame_equal(model.predict(as_text(history)), model.predict(as_text(history.tail(L))))


def test_pyfunc_levels_param_picks_the_interval_levels(registered: Repo, history: pd.DataFrame) -> None:
    out = load_champion(registered).predict(as_text(history.tail(L)), params={"levels": [50, 95]})
    assert list(out.columns) == ["timestamp", "forecast", "lo_50", "hi_50", "lo_95", "hi_95"]
    assert (out["lo_95"] <= out["lo_50"]).all() and (out["hi_50"] <= out["hi_95"]).all()


def test_pyfunc_accepts_a_served_json_payload_with_iso_timestamps(
    registered: Repo, history: pd.DataFrame
) -> None:
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    model = load_champion(registered)
    tail = history.tail(L)
    payload = {
        "dataframe_split": {
            "columns": ["timestamp", "y"],
            "data": [[t.isoformat(), float(v)] for t, v in zip(tail["timestamp"], tail["y"], strict=True)],
        }
    }
    parsed = infer_and_parse_data(json.loads(json.dumps(payload)), model.metadata.get_input_schema())
    pd.testing.assert_frame_equal(model.predict(parsed), model.predict(as_text(tail)))


def test_served_csv_with_text_timestamps_is_forecast(registered: Repo, history: pd.DataFrame) -> None:
    """What `mlflow models serve` does with a text/csv body: parse with the signature, then predict."""
    from mlflow.pyfunc.scoring_server import invocations

    model = load_champion(registered)
    tail = history.tail(L)
    body = tail.to_csv(index=False)  # "2024-01-25 23:00:00"-style text timestamps
    response = invocations(body, "text/csv", model, model.metadata.get_input_schema())
    assert response.status == 200, response.response
    predictions = pd.DataFrame(json.loads(response.response)["predictions"])
    assert list(predictions.columns) == COLUMNS and len(predictions) == H
    np.testing.assert_allclose(predictions["forecast"], expected_forecast(registered, history), rtol=1e-5)


def test_served_too_short_history_answers_our_one_line_message(
    registered: Repo, history: pd.DataFrame
) -> None:
    from mlflow.pyfunc.scoring_server import invocations

    model = load_champion(registered)
    body = history.tail(5).to_csv(index=False)
    with pytest.raises(ForecastInputError) as caught:
        invocations(body, "text/csv", model, model.metadata.get_input_schema())
    answer = json.loads(caught.value.serialize_as_json())
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["message"] == (
        "model input: 5 row(s) given; the model needs at least input_size=24 rows "
        "(the most recent 24 steps at 'h') to forecast the next 6"
    )
    assert caught.value.get_http_status_code() == 400


def test_python_model_parses_datetime_and_text_timestamps_alike(
    registered: Repo, history: pd.DataFrame
) -> None:
    inner = load_champion(registered).unwrap_python_model()
    tail = history.tail(L)
    text = tail.assign(timestamp=tail["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    pd.testing.assert_frame_equal(inner.predict(None, text), inner.predict(None, tail))


def test_pyfunc_logged_with_signature_and_input_example(registered: Repo) -> None:
    meta = load_champion(registered).metadata
    assert [c["name"] for c in meta.signature.inputs.to_dict()] == ["timestamp", "y"]
    assert [c["type"] for c in meta.signature.inputs.to_dict()] == ["string", "double"]
    assert [c["name"] for c in meta.signature.outputs.to_dict()] == COLUMNS
    assert meta.signature.params.to_dict()[0]["name"] == "levels"
    assert meta.saved_input_example_info["type"] == "dataframe"


def test_too_few_rows_error_names_the_count_needed(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    with pytest.raises(DataError, match=r"10 row\(s\) given; the model needs at least input_size=24 rows"):
        forecast(model, extra, history.tail(10))


def test_missing_column_error_names_it_and_the_columns_present(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    with pytest.raises(
        DataError, match=r"column\(s\) \['y'\] not found; columns are \['timestamp', 'load'\]"
    ):
        forecast(model, extra, history.rename(columns={"y": "load"}))


def test_non_numeric_value_error_names_the_column_and_value(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    bad = history.tail(L).astype({"y": object}).reset_index(drop=True)
    bad.loc[5, "y"] = "n/a"
    with pytest.raises(DataError, match=r"column 'y' holds non-numeric values \['n/a'\] \(first at row 5\)"):
        forecast(model, extra, bad)


def test_missing_value_in_the_used_rows_is_an_error(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    bad = history.tail(L).reset_index(drop=True)
    bad.loc[20, "y"] = np.nan
    with pytest.raises(
        DataError, match=r"column 'y' has 1 missing or non-finite value\(s\) in the last 24 rows"
    ):
        forecast(model, extra, bad)


def test_missing_value_before_the_used_rows_is_ignored(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    longer = history.tail(L + 5).reset_index(drop=True)
    longer.loc[0, "y"] = np.nan
    assert len(forecast(model, extra, longer)) == H


def test_timestamps_out_of_order_are_an_error(spec_model, history: pd.DataFrame) -> None:
    extra, model = spec_model
    shuffled = history.tail(L).iloc[::-1]
    with pytest.raises(DataError, match=r"timestamps must increase; row 1 .* does not come after row 0"):
        forecast(model, extra, shuffled)


def test_gap_in_the_timestamps_is_an_error_naming_the_expected_step(
    spec_model, history: pd.DataFrame
) -> None:
    extra, model = spec_model
    gap = pd.concat([history.iloc[-L - 5 : -L + 3], history.iloc[-L + 4 :]])
    assert len(gap) >= L
    with pytest.raises(
        DataError,
        match=r"must be every 'h' \(the model's frequency\); row 8 is 2024-01-25 04:00:00, expected 2024-01-25 03:00:00",
    ):
        forecast(model, extra, gap)


def test_not_a_dataframe_is_an_error(spec_model) -> None:
    extra, model = spec_model
    with pytest.raises(
        DataError, match=r"expected a table \(pandas DataFrame\) with columns \['timestamp', 'y'\]"
    ):
        forecast(model, extra, [[1.0, 2.0]])  # type: ignore[arg-type]


def test_predict_cli_writes_the_forecast_csv(registered: Repo, history: pd.DataFrame, capsys) -> None:
    src, out = registered.root / "history.csv", registered.root / "forecast.csv"
    history.tail(48).to_csv(src, index=False)
    code = main(
        ["predict", "--model", "models:/tiny-lstm@champion", "--input", str(src), "--output", str(out)]
    )
    assert code == 0
    assert "predict: model=models:/tiny-lstm@champion, rows_in=48, horizon=6" in capsys.readouterr().out
    written = pd.read_csv(out, parse_dates=["timestamp"])
    assert list(written.columns) == COLUMNS
    assert written["timestamp"].iloc[0] == history["timestamp"].iloc[-1] + pd.Timedelta("1h")
    np.testing.assert_allclose(written["forecast"], expected_forecast(registered, history), rtol=1e-5)


def test_predict_reads_parquet_and_takes_an_explicit_tracking_uri(
    registered: Repo, history: pd.DataFrame
) -> None:
    from tsforecast.forecasting.predict import run_predict

    src, out = registered.root / "history.parquet", registered.root / "forecast.parquet"
    history.tail(L).to_parquet(src, index=False)
    summary = run_predict(
        "models:/tiny-lstm/1", str(src), str(out), tracking_uri=tracking_uri(registered.paths)
    )
    assert summary["horizon"] == H
    assert len(pd.read_parquet(out)) == H


def test_predict_cli_unknown_model_is_a_one_line_error(
    registered: Repo, history: pd.DataFrame, capsys
) -> None:
    src = registered.root / "history.csv"
    history.tail(L).to_csv(src, index=False)
    code = main(["predict", "--model", "models:/nope@champion", "--input", str(src), "--output", "x.csv"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: model 'models:/nope@champion' not loadable from sqlite:///")
    assert "Traceback" not in err and not (registered.root / "x.csv").exists()


def test_predict_cli_too_short_history_is_a_one_line_error(
    registered: Repo, history: pd.DataFrame, capsys
) -> None:
    src = registered.root / "history.csv"
    history.tail(5).to_csv(src, index=False)
    code = main(
        ["predict", "--model", "models:/tiny-lstm@champion", "--input", str(src), "--output", "x.csv"]
    )
    assert code == 1
    assert "5 row(s) given; the model needs at least input_size=24 rows" in capsys.readouterr().err


def test_champion_loads_by_alias_in_a_fresh_process(registered: Repo, history: pd.DataFrame) -> None:
    src = registered.root / "history.csv"
    history.tail(L).to_csv(src, index=False)
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/tiny-lstm@champion')\n"
        "out = m.predict(pd.read_csv(sys.argv[1]))\n"
        "print(json.dumps({'rows': len(out), 'columns': list(out.columns), 'forecast': out['forecast'].tolist()}))\n"
    )
    env = clean_env(MLFLOW_TRACKING_URI=tracking_uri(registered.paths))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src)], cwd="/", env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rows"] == H and got["columns"] == COLUMNS
    np.testing.assert_allclose(got["forecast"], expected_forecast(registered, history), rtol=1e-5)


def test_predict_without_input_forecasts_from_the_validated_data(
    registered: Repo, history: pd.DataFrame, capsys, caplog
) -> None:
    out = registered.root / "next.csv"
    argv = ["predict", "--root", str(registered.root), "--model", "models:/tiny-lstm@champion"]
    with caplog.at_level("INFO", logger="tsforecast.forecasting.predict"):
        code = main([*argv, "--output", str(out), "--levels", "80", "95"])
    assert code == 0, capsys.readouterr().err
    written = pd.read_csv(out, parse_dates=["timestamp"])
    assert list(written.columns) == ["timestamp", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    last = history["timestamp"].iloc[-1]
    assert written["timestamp"].iloc[0] == last + pd.Timedelta("1h")
    np.testing.assert_allclose(written["forecast"], expected_forecast(registered, history), rtol=1e-5)
    assert f"forecast 6 steps after {last} ({last + pd.Timedelta('1h')} .. " in caplog.text


def test_predict_help_says_how_to_make_an_input_file(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at least window.input_size rows at data.freq without gaps" in text
    assert "Default: data/validated/" in text
