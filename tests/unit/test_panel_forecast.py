"""The forecast of every series of a panel: the stage's parquet, the vectorised core, serving errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.panel_fixtures import (
    ID,
    TS,
    H,
    L,
    fixture_quiet_training,  # noqa: F401
    panel_cfg,
    panel_frame,
    write_panel_repo,
)
from tsforecast.errors import DataError
from tsforecast.forecasting import panel_forecast as pf
from tsforecast.forecasting.core import forecast_frame
from tsforecast.forecasting.forecast import run_forecast
from tsforecast.io import read_json
from tsforecast.training import train as train_mod
from tsforecast.training.model import load_model
from tsforecast.training.train import run_train

N_SERIES = 5


pytestmark = pytest.mark.usefixtures("quiet_training")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny panel repo with a trained global model in models/ (no registry: the local model)."""
    cfg = panel_cfg(train__epochs=1)
    frame = panel_frame(N_SERIES, length=60)
    paths = write_panel_repo(tmp_path_factory.mktemp("panel"), cfg, frame)
    with pytest.MonkeyPatch.context() as mp:  # the function-scoped quiet_training is not active yet
        mp.setenv("TQDM_DISABLE", "1")
        mp.setattr(train_mod, "fast_cpu_math", lambda: None)
        run_train(cfg.window, cfg.model, cfg.train, paths)
    return cfg, frame, paths


def test_the_stage_forecasts_every_series_h_steps_after_its_own_end(trained):
    cfg, frame, paths = trained
    result = run_forecast(cfg.data, cfg.forecast, cfg.orchestration, paths)
    out = pd.read_parquet(paths.forecasts / "forecast.parquet")
    assert list(out.columns) == [ID, "timestamp", "forecast", "lo_80", "hi_80"]
    assert len(out) == N_SERIES * H and result.horizon == H and result.source == "local"
    assert list(pd.unique(out[ID])) == [f"s{i}" for i in range(N_SERIES)]  # data order
    for sid, rows in out.groupby(ID, sort=False):
        last = frame.loc[frame[ID] == sid, TS].max()
        expected = pd.date_range(last, periods=H + 1, freq="h")[1:]
        assert list(rows["timestamp"]) == list(expected)
    assert (out["lo_80"] <= out["forecast"]).all() and (out["forecast"] <= out["hi_80"]).all()


def test_the_stage_plots_and_lists_the_first_series(trained):
    cfg, _, paths = trained
    run_forecast(cfg.data, cfg.forecast, cfg.orchestration, paths)
    rows = read_json(paths.plots / "future.json")
    assert [r[ID] for r in rows] == [f"s{i}" for i in range(4) for _ in range(H)]
    assert [r["step"] for r in rows[:H]] == list(range(1, H + 1))
    assert (paths.plots / "future.png").stat().st_size > 0


def test_the_stage_sends_the_chunks_to_the_configured_dask_address(trained, monkeypatch):
    cfg, _, paths = trained
    seen = {}
    real = pf.map_series

    def record(fn, chunks, address=None, **kw):
        seen.update(address=address, in_process=kw.get("in_process"), n=len(chunks))
        return real(fn, chunks, None, in_process=True)

    monkeypatch.setattr(pf, "map_series", record)
    orch = cfg.orchestration.model_copy(update={"dask_address": "tcp://10.0.0.1:8786"})
    run_forecast(cfg.data, cfg.forecast, orch, paths)
    assert (seen["address"], seen["in_process"]) == ("tcp://10.0.0.1:8786", None) and seen["n"] >= 1


def test_levels_come_in_order_and_nest(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    out = pf.forecast_panel(model, extra, frame, [50, 95])
    assert list(out.columns) == [ID, "timestamp", "forecast", "lo_50", "hi_50", "lo_95", "hi_95"]
    assert (out["lo_95"] <= out["lo_50"]).all() and (out["hi_50"] <= out["hi_95"]).all()
    assert list(forecast_frame(model, extra, frame, []).columns) == [ID, "timestamp", "forecast"]


def test_each_series_is_scaled_by_its_own_stored_scaler(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    out = pf.forecast_panel(model, extra, frame, [])
    sc = extra["series_scalers"]
    for i, sid in enumerate(sc["ids"]):
        mean, std = np.array(sc["mean"][i]), np.array(sc["std"][i])
        x = frame.loc[frame[ID] == sid, ["y"]].to_numpy()[-L:]
        with torch.no_grad():
            p = model(torch.tensor(((x - mean) / std)[None], dtype=torch.float32))[0].double().numpy()
        got = out.loc[out[ID] == sid, "forecast"].to_numpy()
        np.testing.assert_allclose(got, p * std[0] + mean[0], rtol=1e-5)


def test_a_series_forecast_does_not_depend_on_the_others_or_their_order(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    full = pf.forecast_panel(model, extra, frame.sample(frac=1.0, random_state=0), [80])  # rows shuffled
    alone = pf.forecast_panel(model, extra, frame[frame[ID] == "s3"], [80])
    pd.testing.assert_frame_equal(full[full[ID] == "s3"].reset_index(drop=True), alone)


def test_serving_takes_text_timestamps_and_only_the_last_rows(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    tail = frame.groupby(ID, sort=False).tail(L).reset_index(drop=True)
    request = tail.assign(**{TS: tail[TS].map(lambda t: t.isoformat())})
    pd.testing.assert_frame_equal(forecast_frame(model, extra, request), forecast_frame(model, extra, frame))


def test_unknown_ids_fail_in_one_error_naming_them_and_the_known_count(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    other = panel_frame(2, ids=["new-a", "new-b"])
    with pytest.raises(DataError, match=r"2 series are not among the model's 5 known series: new-a, new-b;"):
        forecast_frame(model, extra, pd.concat([frame, other]), source="request")


def test_short_and_gappy_series_are_named(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    short = frame.drop(frame.index[(frame[ID] == "s1")][: 60 - L + 1])  # s1 keeps L - 1 rows
    with pytest.raises(DataError, match=rf"series s1 \({L - 1} rows\) have fewer than input_size={L} rows"):
        forecast_frame(model, extra, short)
    gap = frame.drop(frame.index[(frame[ID] == "s2")][-3])
    with pytest.raises(DataError, match=rf"the last {L} timestamps of series s2 are not every 'h'"):
        forecast_frame(model, extra, gap)
    with pytest.raises(DataError, match=r"column\(s\) \['sid'\] not found"):
        forecast_frame(model, extra, frame.drop(columns=[ID]))


def test_future_grid_continues_each_series_and_keeps_the_time_zone():
    last = pd.DatetimeIndex(["2021-01-01 05:00", "2021-01-02 00:00", "2021-01-01 05:00"], tz="UTC")
    grid = pf.future_grid(last, "h", 2)
    assert list(grid) == list(
        pd.DatetimeIndex(
            ["2021-01-01 06:00", "2021-01-01 07:00", "2021-01-02 01:00", "2021-01-02 02:00"] * 1
            + ["2021-01-01 06:00", "2021-01-01 07:00"],
            tz="UTC",
        )
    )


def test_unknown_ids_are_named_before_any_other_check_of_their_rows(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    stranger = panel_frame(1, length=3, ids=["zz"])  # too short as well: the unknown id is the news
    with pytest.raises(DataError, match=r"1 series are not among the model's 5 known series: zz;"):
        forecast_frame(model, extra, pd.concat([frame, stranger]))


def test_rows_without_an_id_and_text_values_are_named(trained):
    _, frame, paths = trained
    model, extra = load_model(paths.models / "model.pt")
    no_id = frame.astype({ID: object})
    no_id.loc[3, ID] = None
    with pytest.raises(DataError, match=r"1 row\(s\) have no 'sid'; every row needs a series id"):
        forecast_frame(model, extra, no_id)
    text = frame.astype({"y": object})
    text.loc[5, "y"] = "n/a"
    with pytest.raises(
        DataError,
        match=r"column 'y' holds non-numeric values \['n/a'\] \(first at row 5\); it must be numeric",
    ):
        forecast_frame(model, extra, text)
