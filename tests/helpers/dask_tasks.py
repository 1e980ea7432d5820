"""Chunk functions for the Dask tests: importable by the workers as ``tests.helpers.dask_tasks``."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from tsforecast.evaluation import m4

H, M = 24, 24


def score_chunk(chunk: tuple[list[str], np.ndarray]) -> pd.DataFrame:
    """M4 scores of seasonal naive on a chunk (ids, (n, T) values): the last H points are held out."""
    ids, values = chunk
    insample, actuals = values[:, :-H], values[:, -H:]
    forecast = m4.seasonal_naive_forecast(insample, H, M)
    return m4.panel_scores(actuals, forecast, insample, M, ids=ids)[1]


def slow_echo(item: tuple[int, float]) -> int:
    """Sleeps ``item[1]`` seconds and returns ``item[0]``: later chunks finish first."""
    time.sleep(item[1])
    return item[0]


def worker_pid(i: int) -> tuple[int, int]:
    return i, os.getpid()


def fail_on_three(i: int) -> int:
    if i == 3:
        raise ValueError(f"chunk {i} is bad")
    return i
