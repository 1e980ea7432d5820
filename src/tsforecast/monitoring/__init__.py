"""Monitoring: forecasts checked against what happened, and retraining on evidence.

* :mod:`~tsforecast.monitoring.archive`: every delivered forecast, kept (``forecasts/archive/``);
* :mod:`~tsforecast.monitoring.realized`: each archived forecast scored against the rows that arrived;
* :mod:`~tsforecast.monitoring.expected`: what the backtest promised for the same model;
* :mod:`~tsforecast.monitoring.drift`: the newest rows against the training rows, per series;
* :mod:`~tsforecast.monitoring.decision`: the pure retrain rule and its reasons;
* :mod:`~tsforecast.monitoring.records`: the decision log (``forecasts/decisions/``);
* :mod:`~tsforecast.monitoring.mlflow_log`: realized accuracy as MLflow metrics over time, the
  archive shared through the MLflow artifact store;
* :mod:`~tsforecast.monitoring.monitor`: ``tsforecast monitor``, the nightly check composing them;
* :mod:`~tsforecast.monitoring.replay`: ``tsforecast replay``, the nightly logic on held-back history.

Names they share live in :mod:`~tsforecast.monitoring.types`, below all of them.
"""
