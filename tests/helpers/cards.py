"""A small untrained model with a hand-made model card, for the forecast maths without a pipeline.

``n_series=1`` is one series (no id column: the card's ``id_column`` is None and its one scaler is
under the target's name); more is a panel with the id column :data:`ID` and series ``s0, s1, ...``,
series ``i`` scaled with mean ``50 + 10 i`` and std ``10 + i``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tsforecast.evaluation.intervals import calibrate
from tsforecast.training.card import ModelCard, SeriesScalers
from tsforecast.training.model import LSTMForecaster

ID, TS, Y = "sid", "timestamp", "y"
L, H = 12, 6


def series_ids(n_series: int) -> list[str]:
    return [Y] if n_series == 1 else [f"s{i}" for i in range(n_series)]


def card_and_model(n_series: int, calibrated: bool = True) -> tuple[ModelCard, LSTMForecaster]:
    """(card, model): a seeded untrained LSTM and the card of ``n_series`` series."""
    torch.manual_seed(0)
    model = LSTMForecaster(n_features=1, input_size=L, horizon=H, hidden_size=4, num_layers=1).eval()
    ids = series_ids(n_series)
    card = ModelCard(
        input_size=L,
        horizon=H,
        columns=(Y,),
        timestamp_column=TS,
        id_column=None if n_series == 1 else ID,
        freq="h",
        series_scalers=SeriesScalers(
            ids=ids,
            mean=[[50.0 + 10 * i] for i in range(n_series)],
            std=[[10.0 + i] for i in range(n_series)],
        ),
        intervals=calibrate(np.random.default_rng(0).normal(0, 0.5, (200, H))).to_dict()
        if calibrated
        else {},
    )
    return card, model


def history(n_series: int, n: int = 30) -> pd.DataFrame:
    """``n`` hourly rows per series, as a caller holds them: ``timestamp, y`` for one series, else
    ``sid, timestamp, y`` with series ``i`` starting ``i`` hours after the first (datetime timestamps)."""
    parts = []
    for i, sid in enumerate(series_ids(n_series)):
        ts = pd.date_range("2024-03-01", periods=n, freq="h") + pd.Timedelta(hours=i)
        y = 50 + 10 * i + 10 * np.sin(np.arange(n) / 4 + i)
        part = pd.DataFrame({TS: ts, Y: y})
        parts.append(part if n_series == 1 else part.assign(**{ID: sid})[[ID, TS, Y]])
    return pd.concat(parts, ignore_index=True)


__all__ = ["H", "ID", "L", "TS", "Y", "card_and_model", "history", "series_ids"]
