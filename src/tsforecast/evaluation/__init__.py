"""Scoring: metrics, baselines, intervals, the evaluate and backtest stages, plots."""
