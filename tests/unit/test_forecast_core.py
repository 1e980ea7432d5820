"""The forecast maths for S series, S >= 1: columns, timestamps, scaling, intervals and the checks of a
history (one series is a panel of one; its answer has no id column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers.cards import ID, TS, H, L, Y, card_and_model, history
from tsforecast.errors import DataError, ModelLoadError
from tsforecast.forecasting import core
from tsforecast.forecasting.core import forecast_frame, forecast_long
from tsforecast.forecasting.history import future_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZES = pytest.mark.parametrize("n_series", [1, 3], ids=["one_series", "panel_of_3"])


def id_columns(n_series: int) -> list[str]:
    """The answer's id column: none for one series."""
    return [] if n_series == 1 else [ID]


@SIZES
def test_columns_order_bounds_and_each_series_first_step(n_series: int) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    out = forecast_frame(model, card, h, [80, 95])
    assert list(out.columns) == [
        *id_columns(n_series),
        "timestamp",
        "forecast",
        "lo_80",
        "hi_80",
        "lo_95",
        "hi_95",
    ]
    assert len(out) == n_series * H
    for i in range(n_series):
        rows = out.iloc[i * H : (i + 1) * H]
        last = pd.Timestamp("2024-03-01 05:00") + pd.Timedelta(hours=24 + i)  # each series' own end
        assert list(rows["timestamp"]) == list(pd.date_range(last, periods=H + 1, freq="h")[1:])
    assert (out["lo_95"] <= out["lo_80"]).all() and (out["lo_80"] <= out["forecast"]).all()
    assert (out["forecast"] <= out["hi_80"]).all() and (out["hi_80"] <= out["hi_95"]).all()


@SIZES
def test_defaults_to_the_calibrated_levels_and_parses_text_timestamps(n_series: int) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    as_text = h.assign(**{TS: h[TS].dt.strftime("%Y-%m-%dT%H:%M:%S")})
    pd.testing.assert_frame_equal(forecast_frame(model, card, as_text), forecast_frame(model, card, h, [80]))


@SIZES
def test_uncalibrated_model_serves_point_forecasts_only_when_asked(n_series: int) -> None:
    card, model = card_and_model(n_series, calibrated=False)
    out = forecast_frame(model, card, history(n_series), [])
    assert list(out.columns) == [*id_columns(n_series), "timestamp", "forecast"]
    with pytest.raises(ModelLoadError, match=r"holds no interval calibration.*retrain"):
        forecast_frame(model, card, history(n_series), [80])


@SIZES
def test_each_series_is_scaled_by_its_own_stored_scaler(n_series: int) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    out = forecast_frame(model, card, h, [])
    mean, std = card.series_scalers.arrays()
    for i in range(n_series):
        x = h[Y].to_numpy()[(i + 1) * 30 - L : (i + 1) * 30, None]  # the series' last L rows
        with torch.no_grad():
            p = model(torch.tensor(((x - mean[i]) / std[i])[None], dtype=torch.float32))[0].double().numpy()
        np.testing.assert_allclose(
            out["forecast"].to_numpy()[i * H : (i + 1) * H], p * std[i, 0] + mean[i, 0], rtol=1e-5
        )


@SIZES
def test_rows_in_any_order_give_the_forecast_of_the_sorted_history(n_series: int) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    shuffled = h.sample(frac=1.0, random_state=0)  # across and within series
    pd.testing.assert_frame_equal(forecast_frame(model, card, shuffled), forecast_frame(model, card, h))


@SIZES
def test_only_the_last_input_size_rows_are_used(n_series: int) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    tail = h.groupby(ID, sort=False).tail(L) if n_series > 1 else h.tail(L)
    pd.testing.assert_frame_equal(
        forecast_frame(model, card, tail.reset_index(drop=True)), forecast_frame(model, card, h)
    )


def test_a_series_forecast_does_not_depend_on_the_others() -> None:
    card, model = card_and_model(3)
    h = history(3)
    full = forecast_frame(model, card, h, [80])
    alone = forecast_frame(model, card, h[h[ID] == "s1"], [80])
    pd.testing.assert_frame_equal(full[full[ID] == "s1"].reset_index(drop=True), alone)


def test_the_long_forecast_keeps_the_implicit_id_until_the_writer_drops_it() -> None:
    card, model = card_and_model(1)
    long = history(1).assign(series=pd.Categorical([Y] * 30))
    out = forecast_long(model, card, long, [80])
    assert list(out.columns) == ["series", "timestamp", "forecast", "lo_80", "hi_80"]
    pd.testing.assert_frame_equal(out.drop(columns="series"), forecast_frame(model, card, history(1), [80]))


def test_a_one_series_request_may_not_hold_the_reserved_id_column() -> None:
    card, model = card_and_model(1)
    with pytest.raises(DataError, match=r"column 'series' is reserved for the implicit series id"):
        forecast_frame(model, card, history(1).assign(series="x"))


# ---------------------------------------------------------------------------- what a history must hold


@pytest.mark.parametrize(
    ("n_series", "message"),
    [
        (1, r"model input: 5 row\(s\) given; the model needs at least input_size=12 rows \(the most recent 12 "
            r"steps at 'h'\) to forecast the next 6"),
        (3, r"series s1 \(5 rows\) have fewer than input_size=12 rows; each series needs its most recent 12"),
    ],
    ids=["one_series", "panel_of_3"],
)  # fmt: skip
def test_too_short_history_names_the_rows_needed(n_series: int, message: str) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    short = h.drop(h.index[h[ID] == "s1"][:25]) if n_series > 1 else h.tail(5)
    with pytest.raises(DataError, match=message):
        forecast_frame(model, card, short)


@pytest.mark.parametrize(
    ("n_series", "message"),
    [
        (1, r"must be every 'h' \(the model's frequency\); row 21 is 2024-03-01 22:00:00, "
            r"expected 2024-03-01 21:00:00 - fill the gap or resample"),
        (3, r"the last 12 timestamps of series s2 are not every 'h' \(the model's frequency\)"),
    ],
    ids=["one_series", "panel_of_3"],
)  # fmt: skip
def test_a_gap_in_the_used_rows_is_named(n_series: int, message: str) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    last = h.index[h[ID] == "s2"] if n_series > 1 else h.index
    with pytest.raises(DataError, match=message):
        forecast_frame(model, card, h.drop(last[-9]))  # one step missing among the last L


@pytest.mark.parametrize(
    ("n_series", "dropped", "message"),
    [
        (1, Y, r"column\(s\) \['y'\] not found; columns are \['timestamp'\]. The model needs \['timestamp', 'y'\]"),
        (3, ID, r"column\(s\) \['sid'\] not found; columns are \['timestamp', 'y'\]. The model needs \['sid',"),
    ],
    ids=["one_series", "panel_of_3"],
)  # fmt: skip
def test_a_missing_column_is_named_with_the_columns_present(
    n_series: int, dropped: str, message: str
) -> None:
    card, model = card_and_model(n_series)
    with pytest.raises(DataError, match=message):
        forecast_frame(model, card, history(n_series).drop(columns=dropped))


@SIZES
def test_text_values_are_named_with_their_row(n_series: int) -> None:
    card, model = card_and_model(n_series)
    text = history(n_series).astype({Y: object})
    text.loc[5, Y] = "n/a"
    with pytest.raises(
        DataError,
        match=r"column 'y' holds non-numeric values \['n/a'\] \(first at row 5\); it must be numeric",
    ):
        forecast_frame(model, card, text)


@pytest.mark.parametrize(
    ("n_series", "message"),
    [
        (1, r"column 'y' has 1 missing or non-finite value\(s\) in the last 12 rows \(at \['2024-03-01 23:00:00'\]\)"),
        (3, r"series s0 have missing or non-finite values in their last 12 rows; fill them before forecasting"),
    ],
    ids=["one_series", "panel_of_3"],
)  # fmt: skip
def test_a_missing_value_in_the_used_rows_is_named(n_series: int, message: str) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    h.loc[23, Y] = np.nan  # the first series' 24th row: inside its last 12
    with pytest.raises(DataError, match=message):
        forecast_frame(model, card, h)
    h.loc[23, Y] = 1.0
    h.loc[3, Y] = np.nan  # before the used rows: ignored
    assert len(forecast_frame(model, card, h)) == n_series * H


@pytest.mark.parametrize(
    ("n_series", "message"),
    [
        (1, r"timestamp 2024-03-01 10:00:00 appears more than once; timestamps must be unique - drop or aggregate"),
        (3, r"series s0 repeat a timestamp; timestamps must be unique per series - drop or aggregate duplicates"),
    ],
    ids=["one_series", "panel_of_3"],
)  # fmt: skip
def test_a_repeated_timestamp_is_named(n_series: int, message: str) -> None:
    card, model = card_and_model(n_series)
    h = history(n_series)
    with pytest.raises(DataError, match=message):
        forecast_frame(model, card, pd.concat([h, h.iloc[[10]]], ignore_index=True))


@pytest.mark.parametrize(
    ("n_series", "columns"),
    [(1, r"\['timestamp', 'y'\]"), (3, r"\['sid', 'timestamp', 'y'\]")],
    ids=["one_series", "panel_of_3"],
)
def test_not_a_dataframe_is_an_error_naming_the_columns(n_series: int, columns: str) -> None:
    card, model = card_and_model(n_series)
    with pytest.raises(
        DataError, match=rf"expected a table \(pandas DataFrame\) with columns {columns}, got list"
    ):
        forecast_frame(model, card, [[1.0, 2.0]])  # type: ignore[arg-type]


def test_unknown_ids_are_named_before_any_other_check_of_their_rows() -> None:
    card, model = card_and_model(3)
    h = history(3)
    stranger = history(1, n=3).assign(**{ID: "zz"})  # too short as well: the unknown id is the news
    with pytest.raises(DataError, match=r"request: 1 series are not among the model's 3 known series: zz;"):
        forecast_frame(model, card, pd.concat([h, stranger], ignore_index=True), source="request")
    others = pd.concat([history(1).assign(**{ID: n}) for n in ("new-a", "new-b")], ignore_index=True)
    with pytest.raises(DataError, match=r"2 series are not among the model's 3 known series: new-a, new-b;"):
        forecast_frame(model, card, pd.concat([h, others], ignore_index=True))


def test_rows_without_an_id_are_counted() -> None:
    card, model = card_and_model(3)
    no_id = history(3).astype({ID: object})
    no_id.loc[3, ID] = None
    with pytest.raises(DataError, match=r"1 row\(s\) have no 'sid'; every row needs a series id"):
        forecast_frame(model, card, no_id)


def test_a_card_that_does_not_describe_the_weights_is_refused() -> None:
    card, model = card_and_model(1)
    other = card.model_copy(update={"input_size": L + 1})
    with pytest.raises(
        ModelLoadError,
        match=r"the model has \(input_size, horizon, features\)=\(12, 6, 1\) but its model card says \(13, 6, 1\)",
    ):
        forecast_frame(model, other, history(1))


def test_chunks_go_to_the_given_dask_address(monkeypatch: pytest.MonkeyPatch) -> None:
    card, model = card_and_model(3)
    seen: dict[str, object] = {}
    real = core.map_series

    def record(fn, chunks, address=None, **kw):  # noqa: ANN001, ANN003
        seen.update(address=address, in_process=kw.get("in_process"), n=len(chunks))
        return real(fn, chunks, None, in_process=True)

    monkeypatch.setattr(core, "map_series", record)
    forecast_frame(model, card, history(3), address="tcp://10.0.0.1:8786", in_process=None)
    assert (seen["address"], seen["in_process"]) == ("tcp://10.0.0.1:8786", None) and seen["n"] >= 1


def test_future_grid_continues_each_series_and_keeps_the_time_zone() -> None:
    last = pd.DatetimeIndex(["2021-01-01 05:00", "2021-01-02 00:00", "2021-01-01 05:00"], tz="UTC")
    grid = future_grid(last, "h", 2)
    assert list(grid) == list(
        pd.DatetimeIndex(
            ["2021-01-01 06:00", "2021-01-01 07:00", "2021-01-02 01:00", "2021-01-02 02:00"]
            + ["2021-01-01 06:00", "2021-01-01 07:00"],
            tz="UTC",
        )
    )
