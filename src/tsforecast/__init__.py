"""tsforecast: an LSTM forecasting pipeline with DVC, Great Expectations, MLflow and Prefect."""

__version__ = "0.1.0"
