"""What the backtest promised for the champion: the expected ``mse_scaled`` and the band around it.

The backtest (``metrics/backtest.json``) forecast from several origins of the test period with
the same model, no refit: its pooled ``mse_scaled`` is what a delivered forecast should score on
average, and the spread of its cutoffs' ``mse_scaled`` is how much one origin varies. The upper
edge of the band is ``mse_scaled + band * sd`` (``monitor.band``), with ``sd`` the cutoffs' spread
as a robust standard deviation (1.4826 x their median absolute deviation: a single cutoff whose
horizon straddles a change in the data, as the backtest of a model retrained right after a
level shift has, would otherwise widen the band so far that nothing could leave it), floored at
:data:`SD_FLOOR` x ``mse_scaled`` (a handful of cutoffs can agree by chance; a band of zero width
would flag every ordinary day).

Which backtest: the checkout's ``metrics/backtest.json`` when the champion is the model in
``models/`` (the register stage made it champion, or no registry is used); otherwise the
``metrics/backtest.json`` the register stage logged to the champion version's MLflow run.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from tsforecast.io import read_json
from tsforecast.monitoring.mlflow_log import champion_backtest
from tsforecast.monitoring.types import LOCAL_PREFIX, Expected
from tsforecast.paths import Paths

log = logging.getLogger(__name__)

SD_FLOOR = 0.25
BACKTEST_FILE = "backtest.json"


def robust_sd(values: list[float]) -> float:
    """1.4826 x the median absolute deviation (the sd of normal data, not moved by one outlier)."""
    if len(values) < 2:
        return 0.0
    x = np.asarray(values, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def expected_from_backtest(metrics: dict[str, Any], band: float, source: str) -> Expected | None:
    """The band of a backtest's metrics (pure); None when they hold no finite ``mse_scaled``."""
    try:
        mse = float(metrics["mse_scaled"])
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(mse):
        return None
    cuts = [float(c.get("mse_scaled", math.nan)) for c in metrics.get("by_cutoff") or []]
    cuts = [c for c in cuts if math.isfinite(c)]
    spread = robust_sd(cuts)
    sd = max(spread, SD_FLOOR * mse)
    return Expected(
        mse_scaled=mse,
        sd=sd,
        upper=mse + band * sd,
        n_cutoffs=len(cuts) or int(metrics.get("n_cutoffs") or 0),
        band=float(band),
        source=source,
    )


def champion_is_local(champion: str | None, registered: dict[str, Any] | None) -> bool:
    """Whether ``models/`` holds the champion: a local model, or the version register made champion."""
    if champion is None or champion.startswith(LOCAL_PREFIX):
        return True
    return registered is not None and str(registered.get("version")) == champion


def load_expected(
    paths: Paths,
    champion: str | None,
    registered: dict[str, Any] | None,
    model_name: str,
    band: float,
) -> Expected | None:
    """The champion's band: from ``metrics/backtest.json`` or its MLflow run (see the module doc)."""
    local = paths.metrics / BACKTEST_FILE
    if champion_is_local(champion, registered):
        if not local.is_file():
            return None
        return expected_from_backtest(read_json(local), band, f"metrics/{BACKTEST_FILE}")
    found = champion_backtest(paths, model_name, str(champion))
    if found is None:
        return None
    metrics, source = found
    return expected_from_backtest(metrics, band, source)


__all__ = ["SD_FLOOR", "champion_is_local", "expected_from_backtest", "load_expected", "robust_sd"]
