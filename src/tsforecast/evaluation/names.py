"""Names every evaluation module shares: the forecasters, their plot styles and the output files.

A module below all the others, so that scoring, metrics, plots and the two stages read one set.
"""

from __future__ import annotations

MODEL_KEY = "lstm"
#: The baselines every forecast is scored against: M4's Naive1, seasonal naive and Naive2.
BASELINES = ("repeat_last", "seasonal_naive", "naive2")
FORECASTERS = (MODEL_KEY, *BASELINES)

COLORS = {
    MODEL_KEY: "tab:blue",
    "repeat_last": "tab:grey",
    "seasonal_naive": "tab:orange",
    "naive2": "tab:green",
}
LABELS = {
    MODEL_KEY: "LSTM",
    "repeat_last": "repeat last",
    "seasonal_naive": "seasonal naive",
    "naive2": "Naive2",
}

# metrics/ and plots/ (evaluate, backtest)
EVALUATE_JSON = "evaluate.json"  # metrics/
ERROR_BY_STEP_JSON = "error_by_step.json"  # plots/
FORECAST_JSON = "forecast.json"  # plots/
FORECAST_PNG = "forecast.png"
ERROR_BY_STEP_PNG = "error_by_step.png"
BACKTEST_JSON = "backtest.json"  # metrics/ and plots/
BACKTEST_PARQUET = "backtest.parquet"  # metrics/
BACKTEST_PNG = "backtest.png"
WORST_BY = "mase"  # worst_series.png ranks by MASE: scale-free, and not inflated near zero as sMAPE is

__all__ = [
    "BACKTEST_JSON",
    "BACKTEST_PARQUET",
    "BACKTEST_PNG",
    "BASELINES",
    "COLORS",
    "ERROR_BY_STEP_JSON",
    "ERROR_BY_STEP_PNG",
    "EVALUATE_JSON",
    "FORECASTERS",
    "FORECAST_JSON",
    "FORECAST_PNG",
    "LABELS",
    "MODEL_KEY",
    "WORST_BY",
]
