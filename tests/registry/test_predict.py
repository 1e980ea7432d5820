"""Forecasting through the MLflow pyfunc and ``tsforecast predict``, one series and a panel of 3.

Every caller the champion has: Python with the validated frame as it is (datetime timestamps,
issue 19), Python with text timestamps, JSON and CSV bodies as ``mlflow models serve`` parses
them, ``tsforecast predict`` from a file or the validated data, and a fresh process loading the
alias. The checks of a history are tested on the forecast maths (tests/unit/test_forecast_core.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.mlflow_fixtures import Repo, clean_env, fixture_tiny_repo_template, register  # noqa: F401
from tests.helpers.series_repos import (  # noqa: F401
    ID,
    PANEL_IDS,
    H,
    L,
    fixture_panel_repo_template,
    fixture_series_repo,
    n_series,
)
from tsforecast.cli import main
from tsforecast.registry.pyfunc import ForecastInputError
from tsforecast.registry.tracking import tracking, tracking_uri
from tsforecast.training.card import ModelCard
from tsforecast.training.model import load_model

POINT = ["timestamp", "forecast", "lo_80", "hi_80"]


def columns(repo: Repo, values: list[str] = POINT) -> list[str]:
    """The answer's columns: the id column first for a panel."""
    return values if n_series(repo) == 1 else [ID, *values]


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as ISO 8601 text, as CSV and JSON requests carry them."""
    return frame.assign(timestamp=frame["timestamp"].map(lambda t: t.isoformat()))


def tail(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The last ``rows`` rows of each series."""
    parts = frame.groupby(ID, sort=False).tail(rows) if ID in frame.columns else frame.tail(rows)
    return parts.reset_index(drop=True)


@pytest.fixture
def registered(series_repo: Repo) -> Repo:
    """The tiny repo (one series or a panel of 3) with its model registered as champion."""
    register(series_repo)
    return series_repo


@pytest.fixture
def history(series_repo: Repo) -> pd.DataFrame:
    """The validated data as the project holds it: a datetime64 timestamp column (and the id column)."""
    return pd.read_parquet(series_repo.paths.validated / "data.parquet")


def load_champion(repo: Repo):
    import mlflow

    with tracking(tracking_uri(repo.paths)):
        return mlflow.pyfunc.load_model("models:/tiny-lstm@champion")


def expected_forecast(repo: Repo, history: pd.DataFrame) -> np.ndarray:
    """The LSTM's own forecast for each series' last L rows, scaled in and out by hand, series after series."""
    model, extra = load_model(repo.paths.models / "model.pt")
    card = ModelCard.from_extra(extra)
    mean, std = card.series_scalers.arrays()
    ids = [str(i) for i in card.series_scalers.ids]
    groups = [("y", history)] if ID not in history.columns else list(history.groupby(ID, sort=False))
    out = []
    for sid, rows in groups:
        i = ids.index(str(sid))
        x = (rows[["y"]].to_numpy()[-L:] - mean[i]) / std[i]  # (L, 1)
        with torch.no_grad():
            y = model(torch.tensor(x, dtype=torch.float32)[None])[0].double().numpy()  # (H,)
        out.append(y * std[i, 0] + mean[i, 0])
    return np.concatenate(out)


def test_pyfunc_forecasts_the_validated_frame_with_its_datetime_timestamps(
    registered: Repo, history: pd.DataFrame
) -> None:
    """Issue 19: ``load_model("models:/<name>@champion").predict(df)`` with df from data/validated/."""
    assert pd.api.types.is_datetime64_any_dtype(history["timestamp"])
    out = load_champion(registered).predict(history)
    assert list(out.columns) == columns(registered)
    assert len(out) == n_series(registered) * H
    for k, (_, rows) in enumerate(
        [("", history)] if n_series(registered) == 1 else history.groupby(ID, sort=False)
    ):
        last = rows["timestamp"].iloc[-1]
        expected = pd.date_range(last, periods=H + 1, freq="h")[1:]
        assert list(out["timestamp"].iloc[k * H : (k + 1) * H]) == list(expected)
    np.testing.assert_allclose(out["forecast"].to_numpy(), expected_forecast(registered, history), rtol=1e-5)
    assert (out["lo_80"] <= out["forecast"]).all() and (out["forecast"] <= out["hi_80"]).all()
    assert (out["hi_80"] - out["lo_80"]).min() > 0


def test_pyfunc_takes_text_timestamps_and_only_the_last_rows_alike(
    registered: Repo, history: pd.DataFrame
) -> None:
    model = load_champion(registered)
    full = model.predict(history)
    pd.testing.assert_frame_equal(model.predict(as_text(tail(history, L))), full)
    text = history.assign(timestamp=history["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    pd.testing.assert_frame_equal(model.predict(text), full)


def test_pyfunc_levels_param_picks_the_interval_levels(registered: Repo, history: pd.DataFrame) -> None:
    out = load_champion(registered).predict(history, params={"levels": [50, 95]})
    assert list(out.columns) == columns(
        registered, ["timestamp", "forecast", "lo_50", "hi_50", "lo_95", "hi_95"]
    )
    assert (out["lo_95"] <= out["lo_50"]).all() and (out["hi_50"] <= out["hi_95"]).all()


def test_served_json_bodies_with_iso_timestamps_are_forecast(registered: Repo, history: pd.DataFrame) -> None:
    """What `mlflow models serve` does with an application/json body: parse, then predict."""
    from mlflow.pyfunc.scoring_server import invocations

    model = load_champion(registered)
    rows = tail(history, L)
    split = json.loads(as_text(rows).to_json(orient="split", index=False))
    bodies = [
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}},
        {"dataframe_records": as_text(rows).to_dict("records")},
        {"dataframe_split": {"columns": split["columns"], "data": split["data"]}, "params": {"levels": [50]}},
    ]
    answers = []
    for body in bodies:
        response = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
        assert response.status == 200, response.response
        answers.append(pd.DataFrame(json.loads(response.response)["predictions"]))
    assert list(answers[0].columns) == columns(registered) and len(answers[0]) == n_series(registered) * H
    pd.testing.assert_frame_equal(answers[0], answers[1])
    assert list(answers[2].columns) == columns(registered, ["timestamp", "forecast", "lo_50", "hi_50"])
    np.testing.assert_allclose(answers[0]["forecast"], expected_forecast(registered, history), rtol=1e-5)


def test_served_csv_with_text_timestamps_is_forecast(registered: Repo, history: pd.DataFrame) -> None:
    """What `mlflow models serve` does with a text/csv body: parse, then predict."""
    from mlflow.pyfunc.scoring_server import invocations

    model = load_champion(registered)
    body = tail(history, L).to_csv(index=False)  # "2024-01-25 23:00:00"-style text timestamps
    response = invocations(body, "text/csv", model, model.metadata.get_input_schema())
    assert response.status == 200, response.response
    predictions = pd.DataFrame(json.loads(response.response)["predictions"])
    assert list(predictions.columns) == columns(registered) and len(predictions) == n_series(registered) * H
    np.testing.assert_allclose(predictions["forecast"], expected_forecast(registered, history), rtol=1e-5)


def _served_error(repo: Repo, body: str) -> dict:
    from mlflow.pyfunc.scoring_server import invocations

    model = load_champion(repo)
    with pytest.raises(ForecastInputError) as caught:
        invocations(body, "text/csv", model, model.metadata.get_input_schema())
    assert caught.value.get_http_status_code() == 400
    return json.loads(caught.value.serialize_as_json())


def test_served_too_short_history_answers_our_one_line_message(
    registered: Repo, history: pd.DataFrame
) -> None:
    short = tail(history, 5) if n_series(registered) == 1 else pd.concat(
        [tail(history[history[ID] != "s1"], L), tail(history[history[ID] == "s1"], 5)]
    )  # fmt: skip
    answer = _served_error(registered, short.to_csv(index=False))
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["message"] == (
        "model input: 5 row(s) given; the model needs at least input_size=24 rows "
        "(the most recent 24 steps at 'h') to forecast the next 6"
        if n_series(registered) == 1
        else "model input: series s1 (5 rows) have fewer than input_size=24 rows; "
        "each series needs its most recent 24 steps at 'h'"
    )


@pytest.mark.parametrize("series_repo", [3], ids=["panel_of_3"], indirect=True)
def test_served_unknown_ids_answer_400_naming_them_and_the_known_count(
    registered: Repo, history: pd.DataFrame
) -> None:
    stranger = tail(history[history[ID] == "s0"], L).assign(**{ID: "zz"})
    answer = _served_error(registered, pd.concat([tail(history, L), stranger]).to_csv(index=False))
    assert answer["message"].startswith("model input: 1 series are not among the model's 3 known series: zz;")


def test_pyfunc_logged_with_outputs_params_and_an_input_example_but_no_input_schema(registered: Repo) -> None:
    import mlflow
    from mlflow.models import Model

    meta = load_champion(registered).metadata
    assert meta.signature.inputs is None  # the model checks its input itself: see registry/pyfunc.py
    assert [c["name"] for c in meta.signature.outputs.to_dict()] == columns(registered)
    assert meta.signature.outputs.to_dict()[-4]["type"] == "datetime"  # the answer's timestamp
    assert meta.signature.params.to_dict()[0]["name"] == "levels"
    assert meta.saved_input_example_info["type"] == "dataframe"
    with tracking(tracking_uri(registered.paths)):
        local = mlflow.artifacts.download_artifacts("models:/tiny-lstm@champion")
    example = Model.load(local).load_input_example(local)
    assert list(example.columns) == columns(registered, ["timestamp", "y"])
    assert len(example) == min(n_series(registered), 2) * L  # the last L rows of (at most 2 of) the series
    assert isinstance(example["timestamp"].iloc[0], str)  # as a request carries them


def test_predict_cli_writes_the_forecast_csv(registered: Repo, history: pd.DataFrame, capsys) -> None:
    src, out = registered.root / "history.csv", registered.root / "forecast.csv"
    tail(history, 48).to_csv(src, index=False)
    code = main(
        ["predict", "--model", "models:/tiny-lstm@champion", "--input", str(src), "--output", str(out)]
    )
    assert code == 0
    rows = 48 * n_series(registered)
    assert f"predict: model=models:/tiny-lstm@champion, rows_in={rows}, horizon=6" in capsys.readouterr().out
    written = pd.read_csv(out, parse_dates=["timestamp"])
    assert list(written.columns) == columns(registered)
    assert written["timestamp"].iloc[0] == tail(history, 1)["timestamp"].iloc[0] + pd.Timedelta("1h")
    np.testing.assert_allclose(written["forecast"], expected_forecast(registered, history), rtol=1e-5)


def test_predict_reads_parquet_and_takes_an_explicit_tracking_uri(
    registered: Repo, history: pd.DataFrame
) -> None:
    from tsforecast.forecasting.predict import run_predict

    src, out = registered.root / "history.parquet", registered.root / "forecast.parquet"
    tail(history, L).to_parquet(src, index=False)
    summary = run_predict(
        "models:/tiny-lstm/1", str(src), str(out), tracking_uri=tracking_uri(registered.paths)
    )
    assert (summary["horizon"], summary["n_series"]) == (H, n_series(registered))
    assert len(pd.read_parquet(out)) == n_series(registered) * H


def test_predict_cli_too_short_history_is_a_one_line_error(
    registered: Repo, history: pd.DataFrame, capsys
) -> None:
    src = registered.root / "history.csv"
    tail(history, 5).to_csv(src, index=False)
    code = main(
        ["predict", "--model", "models:/tiny-lstm@champion", "--input", str(src), "--output", "x.csv"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    if n_series(registered) == 1:
        assert "5 row(s) given; the model needs at least input_size=24 rows" in err
    else:
        assert "series s0 (5 rows), s1 (5 rows), s2 (5 rows) have fewer than input_size=24 rows" in err


def test_predict_without_input_forecasts_from_the_validated_data(
    registered: Repo, history: pd.DataFrame, capsys, caplog
) -> None:
    out = registered.root / "next.csv"
    argv = ["predict", "--root", str(registered.root), "--model", "models:/tiny-lstm@champion"]
    with caplog.at_level("INFO", logger="tsforecast.forecasting.predict"):
        code = main([*argv, "--output", str(out), "--levels", "80", "95"])
    assert code == 0, capsys.readouterr().err
    written = pd.read_csv(out, parse_dates=["timestamp"])
    assert list(written.columns) == columns(
        registered, ["timestamp", "forecast", "lo_80", "hi_80", "lo_95", "hi_95"]
    )
    last = tail(history, 1)["timestamp"].iloc[0]
    assert written["timestamp"].iloc[0] == last + pd.Timedelta("1h")
    np.testing.assert_allclose(written["forecast"], expected_forecast(registered, history), rtol=1e-5)
    many = "" if n_series(registered) == 1 else " of 3 series (the first)"
    assert f"forecast 6 steps{many} after {last} ({last + pd.Timedelta('1h')} .. " in caplog.text


def test_champion_loads_by_alias_in_a_fresh_process_and_forecasts_a_datetime_frame(registered: Repo) -> None:
    """Issue 19 from a fresh process: the validated parquet (datetime timestamps) through the alias."""
    code = (
        "import json, sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/tiny-lstm@champion')\n"
        "out = m.predict(pd.read_parquet(sys.argv[1]))\n"
        "print(json.dumps({'rows': len(out), 'columns': list(out.columns), 'forecast': out['forecast'].tolist()}))\n"
    )
    env = clean_env(MLFLOW_TRACKING_URI=tracking_uri(registered.paths))
    src = registered.paths.validated / "data.parquet"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src)], cwd="/", env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rows"] == n_series(registered) * H and got["columns"] == columns(registered)
    np.testing.assert_allclose(
        got["forecast"], expected_forecast(registered, pd.read_parquet(src)), rtol=1e-5
    )


@pytest.mark.parametrize("series_repo", [1], ids=["one_series"], indirect=True)
def test_predict_cli_unknown_model_is_a_one_line_error(
    registered: Repo, history: pd.DataFrame, capsys
) -> None:
    src = registered.root / "history.csv"
    tail(history, L).to_csv(src, index=False)
    code = main(["predict", "--model", "models:/nope@champion", "--input", str(src), "--output", "x.csv"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: model 'models:/nope@champion' not loadable from sqlite:///")
    assert "Traceback" not in err and not (registered.root / "x.csv").exists()


def test_predict_help_says_how_to_make_an_input_file(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "at least window.input_size rows at data.freq without gaps" in text
    assert "Default: data/validated/" in text
