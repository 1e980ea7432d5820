"""Scoring a global model on a panel, one chunk of series at a time: the core of evaluate and backtest.

One series is a panel of one, so this is the only scoring there is. A chunk is a
:class:`~tsforecast.dataset.panel.Panel` of a few series (:func:`panel_slice`: it carries its own
rows, never a path), so :func:`score_chunk` runs the same in this process or on a Dask worker
(:func:`tsforecast.parallel.map_series`). Inside a chunk everything is vectorised over windows;
nothing loops per series.

Per window the LSTM (on each series' own train-fit scale) and the baselines of
:mod:`tsforecast.evaluation.baselines` forecast H steps from the window's origin. MASE is scaled
by the in-sample seasonal-naive error of each series' rows before its test part
(:func:`tsforecast.evaluation.m4.mase_scale`). A chunk returns sums per *group* (a series, or a
series and origin for the backtest), so what travels back is small whatever the number of
windows; on request also each window's residuals (to calibrate intervals) or its forecasts (the
backtest's rows).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from tsforecast.dataset.panel import Panel
from tsforecast.errors import DataError
from tsforecast.evaluation import m4
from tsforecast.evaluation.baselines import baseline_forecasts, naive2_parts
from tsforecast.evaluation.intervals import Calibration
from tsforecast.evaluation.names import BASELINES, FORECASTERS, MODEL_KEY
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster

log = logging.getLogger(__name__)

STATS = ("sse_scaled", "sae_scaled", "sse", "sae", "smape")  # per-window sums, per forecaster
PREDICT_BATCH = 2048
WINDOWS_PER_CHUNK = 4096  # a chunk's windows: big enough for efficient LSTM batches


@dataclass(frozen=True)
class Job:
    """What every chunk of one scoring pass shares (small; sent once with the function)."""

    model_args: dict[str, Any] | None  # None: the baselines only (no LSTM forecasts)
    state: dict[str, np.ndarray]  # the model's state_dict as numpy arrays
    period: int  # evaluate.seasonal_period: seasonal naive, Naive2, MASE
    levels: tuple[float, ...] = ()
    calibrations: dict[str, Calibration] = field(default_factory=dict)  # forecaster -> its intervals
    part: str = "test"
    n_origins: int | None = None  # None: every window of ``part``; k: k origins per series (backtest)
    residuals: tuple[str, ...] = ()  # forecasters whose scaled residuals y - p come back, per window
    residual_every: int = 1  # keep every k-th window's residuals (a cap on what travels back)
    forecasts: bool = False  # return every window's actuals and forecasts in data units

    @classmethod
    def for_model(cls, model: LSTMForecaster, period: int, **kw: Any) -> Job:
        state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return cls(model_args=asdict(model.args), state=state, period=int(period), **kw)

    @classmethod
    def baselines_only(cls, period: int, **kw: Any) -> Job:
        return cls(model_args=None, state={}, period=int(period), **kw)

    @property
    def forecasters(self) -> tuple[str, ...]:
        return FORECASTERS if self.model_args is not None else BASELINES

    def model(self) -> LSTMForecaster | None:
        if self.model_args is None:
            return None
        net = LSTMForecaster.from_args(self.model_args)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        return net.eval()


@dataclass
class Forecasts:
    """Windows' actuals and every forecaster's forecasts, in data units and on the scaled axis."""

    y_raw: np.ndarray  # (K, H) float64
    y_scaled: np.ndarray  # (K, H) float64
    raw: dict[str, np.ndarray]  # forecaster -> (K, H) data units
    scaled: dict[str, np.ndarray]  # forecaster -> (K, H) each series' train-fit scale
    origin: np.ndarray  # (K,) local row of each window's origin


@dataclass
class ChunkScores:
    """One chunk's sums per group (G groups, in series-major order) and per series (S)."""

    n_windows: np.ndarray  # (G,) windows in each group
    sums: dict[str, np.ndarray]  # "<forecaster>.<stat>" -> (G,); "<f>.pinball" for calibrated ones
    step_sse: dict[str, np.ndarray]  # forecaster -> (G, H) scaled squared errors summed over windows
    covered: dict[str, np.ndarray]  # calibrated forecaster -> (G, n_levels) covered window-steps
    width: dict[str, np.ndarray]  # calibrated forecaster -> (G, n_levels) summed interval widths (scaled)
    origin: np.ndarray  # (G,) local row of the group's last origin
    mase_scale: np.ndarray  # (S,)
    seasonal: np.ndarray  # (S,) bool: Naive2 treated the series as seasonal
    window_mae: np.ndarray  # (K,) the LSTM's data-unit MAE of each window (empty without the LSTM)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)  # f -> (K', H) scaled y - p
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)  # "actual" and f -> (K, H) units


def panel_slice(panel: Panel, a: int, b: int) -> Panel:
    """Series ``a..b-1`` as a panel of their own, holding a copy of their rows (picklable, no mmap)."""
    lo, hi = int(panel.offsets[a]), int(panel.offsets[b])
    return replace(
        panel,
        ids=panel.ids[a:b],
        values=np.array(panel.values[lo:hi]),
        offsets=panel.offsets[a : b + 1] - lo,
        bounds=panel.bounds[a:b],
        mean=panel.mean[a:b],
        std=panel.std[a:b],
        first=panel.first[a:b],
    )


def check_model(model: LSTMForecaster, panel: Panel) -> None:
    """The model must take the panel's windows: (input_size, horizon, features)."""
    expected = (panel.input_size, panel.horizon, len(panel.columns))
    got = (model.args.input_size, model.args.horizon, model.args.n_features)
    if got != expected:
        raise DataError(
            f"model expects (input_size, horizon, features)={got} but the data gives "
            f"{expected}; retrain or re-window (`dvc repro`)"
        )


def window_index(panel: Panel, part: str, n_origins: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(series, start) of the windows scored, and each one's group (series, or series x origin).

    ``n_origins``: None takes every window; k takes k per series at evenly spaced positions of
    its windows (always the first and, for k >= 2, the last).
    """
    wr = panel.windows(part)
    if n_origins is None:
        idx = wr.index()
        return idx, idx[:, 0]
    k = int(n_origins)
    s = np.repeat(np.arange(panel.n_series, dtype=np.int64), k)  # (S*k,)
    j = np.tile(np.arange(k, dtype=np.int64), panel.n_series)
    span = (wr.count[s] - 1).astype(np.float64)  # the last window's position in each series
    if k > 1:
        pos = np.where(j == k - 1, span, np.round(j * (span / (k - 1))))  # np.linspace(0, span, k)
    else:
        pos = np.zeros_like(span)
    starts = wr.starts(s, pos.astype(np.int64))
    return np.stack([s, starts], axis=1), s * k + j


def forecasts_at(
    panel: Panel, s: np.ndarray, starts: np.ndarray, m: int, si: np.ndarray, model: LSTMForecaster | None
) -> Forecasts:
    """Actuals and forecasts of the windows at local ``starts`` of series ``s`` (the LSTM's if given)."""
    x, y_scaled = panel.gather(s, starts, scaled=True)  # (K, L, C), (K, H)
    origin = starts + panel.input_size - 1
    raw = baseline_forecasts(panel, s, origin, si, m)
    mean, std = panel.mean[s, 0][:, None], panel.std[s, 0][:, None]
    scaled = {name: (f - mean) / std for name, f in raw.items()}
    if model is not None:
        p_scaled = predict_windows(model, x, PREDICT_BATCH)  # (K, H)
        raw = {MODEL_KEY: panel.inverse_target(s, p_scaled), **raw}
        scaled = {MODEL_KEY: p_scaled, **scaled}
    y_raw = panel.gather(s, starts, scaled=False)[1].astype(np.float64)
    return Forecasts(y_raw=y_raw, y_scaled=y_scaled.astype(np.float64), raw=raw, scaled=scaled, origin=origin)


def _group_sum(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of ``values`` (K,) or (K, D) per group: (G,) or (G, D)."""
    if values.ndim == 1:
        return np.bincount(group, weights=values, minlength=n_groups)
    out = np.zeros((n_groups, values.shape[1]))
    np.add.at(out, group, values)
    return out


def _error_sums(
    fc: Forecasts, group: np.ndarray, n_groups: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per group: every forecaster's error sums (:data:`STATS`) and scaled squared errors per step."""
    sums: dict[str, np.ndarray] = {}
    step_sse: dict[str, np.ndarray] = {}
    for name in fc.raw:
        err = fc.raw[name] - fc.y_raw  # (K, H) data units
        err_scaled = fc.scaled[name] - fc.y_scaled
        per_window = {
            "sse_scaled": (err_scaled**2).sum(axis=1),
            "sae_scaled": np.abs(err_scaled).sum(axis=1),
            "sse": (err**2).sum(axis=1),
            "sae": np.abs(err).sum(axis=1),
            "smape": m4.smape(fc.y_raw, fc.raw[name]) if len(err) else np.zeros(0),
        }
        for stat, v in per_window.items():
            sums[f"{name}.{stat}"] = _group_sum(group, v, n_groups)
        step_sse[name] = _group_sum(group, err_scaled**2, n_groups)
    return sums, step_sse


def _interval_sums(
    job: Job, fc: Forecasts, group: np.ndarray, n_groups: int, sums: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per calibrated forecaster and group: covered window-steps and widths per level (scaled); adds
    each window's pinball loss (mean over the levels' two quantiles, summed over steps) to ``sums``."""
    covered: dict[str, np.ndarray] = {}
    width: dict[str, np.ndarray] = {}
    y = fc.y_scaled
    for name, calibration in job.calibrations.items():
        if calibration.empty or name not in fc.scaled or not job.levels:
            continue
        cov, wid = np.zeros((n_groups, len(job.levels))), np.zeros((n_groups, len(job.levels)))
        loss = np.zeros(len(y))
        for i, level in enumerate(job.levels):
            lo, hi = calibration.bounds(fc.scaled[name], level)
            cov[:, i] = _group_sum(group, ((y >= lo) & (y <= hi)).sum(axis=1), n_groups)
            wid[:, i] = _group_sum(group, (hi - lo).sum(axis=1), n_groups)
            a = (1 - level / 100) / 2
            for q, tau in ((lo, a), (hi, 1 - a)):
                d = y - q
                loss += np.maximum(tau * d, (tau - 1) * d).sum(axis=1)
        covered[name], width[name] = cov, wid
        sums[f"{name}.pinball"] = _group_sum(group, loss / (2 * len(job.levels)), n_groups)
    return covered, width


def score_chunk(job: Job, chunk: Panel) -> ChunkScores:
    """Score the LSTM and the baselines on the windows of ``job.part`` in ``chunk`` (pure)."""
    idx, group = window_index(chunk, job.part, job.n_origins)
    s, starts = idx[:, 0], idx[:, 1]
    n_groups = chunk.n_series * (job.n_origins or 1)
    insample = chunk.histories(before="test")
    seasonal, si = naive2_parts(insample, job.period)
    fc = forecasts_at(chunk, s, starts, job.period, si, job.model())
    sums, step_sse = _error_sums(fc, group, n_groups)
    covered, width = _interval_sums(job, fc, group, n_groups, sums)
    last_origin = np.full(n_groups, -1, dtype=np.int64)
    np.maximum.at(last_origin, group, fc.origin)
    keep = slice(None, None, max(1, job.residual_every))
    has_model = MODEL_KEY in fc.raw
    return ChunkScores(
        n_windows=np.bincount(group, minlength=n_groups).astype(np.int64),
        sums=sums,
        step_sse=step_sse,
        covered=covered,
        width=width,
        origin=last_origin,
        mase_scale=m4.mase_scale(insample, job.period),
        seasonal=seasonal,
        window_mae=np.abs(fc.raw[MODEL_KEY] - fc.y_raw).mean(axis=1) if has_model else np.zeros(0),
        residuals={f: (fc.y_scaled - fc.scaled[f])[keep].astype(np.float32) for f in job.residuals},
        forecasts={"actual": fc.y_raw, **fc.raw} if job.forecasts else {},
    )


def concat(parts: list[ChunkScores]) -> ChunkScores:
    """The chunks' scores as one, in chunk (so series) order."""

    def cat(get: Any) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])

    def cat_dict(get: Any) -> dict[str, np.ndarray]:
        return {k: cat(lambda p, k=k: get(p)[k]) for k in get(parts[0])}

    return ChunkScores(
        n_windows=cat(lambda p: p.n_windows),
        sums=cat_dict(lambda p: p.sums),
        step_sse=cat_dict(lambda p: p.step_sse),
        covered=cat_dict(lambda p: p.covered),
        width=cat_dict(lambda p: p.width),
        origin=cat(lambda p: p.origin),
        mase_scale=cat(lambda p: p.mase_scale),
        seasonal=cat(lambda p: p.seasonal),
        window_mae=cat(lambda p: p.window_mae),
        residuals=cat_dict(lambda p: p.residuals),
        forecasts=cat_dict(lambda p: p.forecasts),
    )


def chunks_of(panel: Panel, part: str = "test", windows_per_chunk: int = WINDOWS_PER_CHUNK) -> list[Panel]:
    """The panel cut into chunks of whole series, ~``windows_per_chunk`` windows each (>= 2 chunks
    when there are 2+ series, so that two workers both get work)."""
    from tsforecast.parallel import chunk_ranges

    per_series = max(1.0, panel.windows(part).total / max(1, panel.n_series))
    ranges = chunk_ranges(panel.n_series, per_series / windows_per_chunk, target_s=1.0, min_chunks=2)
    return [panel_slice(panel, a, b) for a, b in ranges]


def score_panel(
    job: Job,
    panel: Panel,
    address: str | None = None,
    *,
    in_process: bool | None = None,
    desc: str = "scoring",
) -> ChunkScores:
    """:func:`score_chunk` over the whole panel through ``parallel.map_series`` (Dask when it pays)."""
    from functools import partial

    from tsforecast.parallel import map_series
    from tsforecast.progress import progress_mode

    parts = map_series(
        partial(score_chunk, job),
        chunks_of(panel, job.part),
        address,
        in_process=in_process,
        desc=desc,
        progress=progress_mode() == "bar",  # a live bar on a terminal only; logs get the stage's line
    )
    return concat(parts)


__all__ = [
    "PREDICT_BATCH",
    "STATS",
    "ChunkScores",
    "Forecasts",
    "Job",
    "check_model",
    "chunks_of",
    "concat",
    "forecasts_at",
    "panel_slice",
    "score_chunk",
    "score_panel",
    "window_index",
]
