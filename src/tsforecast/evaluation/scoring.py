"""Scoring a global model on a panel, one chunk of series at a time: the core of panel evaluate/backtest.

A chunk is a :class:`~tsforecast.dataset.panel.Panel` of a few series (:func:`panel_slice`: it carries
its own rows, never a path), so :func:`score_chunk` runs the same in this process or on a Dask
worker (:func:`tsforecast.parallel.map_series`). Inside a chunk everything is vectorised over
windows; nothing loops per series.

Per window the LSTM (on each series' own train-fit scale) and three baselines forecast H steps
from the window's origin ``o`` (its last input row):

* ``repeat_last``: the value at ``o`` (M4's Naive1);
* ``seasonal_naive``: the value one season (``m``) earlier, ``x[o + h - m * ceil(h / m)]``
  (naive when the history before the origin is shorter than ``m``);
* ``naive2``: M4's Naive2 (:mod:`tsforecast.evaluation.m4`): the seasonality test and the classical
  multiplicative indices are fitted on the series' *in-sample* rows (every row before its test
  part); the value at ``o`` is seasonally adjusted and re-seasonalised forward. With one window
  per series whose origin is the last in-sample row (the M4 protocol: split counts anchored at
  the end, test = H) every baseline is exactly :func:`tsforecast.evaluation.m4.panel_scores`'.

MASE is scaled by the in-sample seasonal-naive error of the same rows (:func:`tsforecast.evaluation.m4.mase_scale`).
A chunk returns sums per *group* (a series, or a series and origin for the backtest), so what
travels back is small whatever the number of windows.
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
from tsforecast.evaluation.intervals import Calibration
from tsforecast.training.inference import predict_windows
from tsforecast.training.model import LSTMForecaster

log = logging.getLogger(__name__)

MODEL_KEY = "lstm"
BASELINES = ("repeat_last", "seasonal_naive", "naive2")
FORECASTERS = (MODEL_KEY, *BASELINES)
STATS = ("sse_scaled", "sae_scaled", "sse", "sae", "smape")  # per-window sums, per forecaster
PREDICT_BATCH = 2048
WINDOWS_PER_CHUNK = 4096  # a chunk's windows: big enough for efficient LSTM batches


@dataclass(frozen=True)
class Job:
    """What every chunk of one scoring pass shares (small; sent once with the function)."""

    model_args: dict[str, Any]
    state: dict[str, np.ndarray]  # the model's state_dict as numpy arrays
    period: int  # evaluate.seasonal_period: seasonal naive, Naive2, MASE
    levels: tuple[float, ...] = ()
    quantiles: np.ndarray | None = None  # interval calibration (G, H), scaled units
    calibration_n: int = 0
    part: str = "test"
    n_origins: int | None = None  # None: every window of ``part``; k: k origins per series (backtest)
    residuals: bool = False  # return the LSTM's residuals per window (to calibrate intervals)

    @classmethod
    def for_model(cls, model: LSTMForecaster, period: int, **kw: Any) -> Job:
        state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return cls(model_args=asdict(model.args), state=state, period=int(period), **kw)

    def calibration(self) -> Calibration:
        return Calibration(quantiles=self.quantiles, n=self.calibration_n)

    def model(self) -> LSTMForecaster:
        net = LSTMForecaster.from_args(self.model_args)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        return net.eval()


@dataclass
class ChunkScores:
    """One chunk's sums per group (G groups, in series-major order) and per series (S)."""

    n_windows: np.ndarray  # (G,) windows in each group
    sums: dict[str, np.ndarray]  # "<forecaster>.<stat>" -> (G,)
    step_sse: dict[str, np.ndarray]  # forecaster -> (G, H) scaled squared errors summed over windows
    covered: np.ndarray  # (G, n_levels) covered window-steps (LSTM intervals)
    width: np.ndarray  # (G, n_levels) summed interval widths (scaled)
    origin: np.ndarray  # (G,) local row of the group's last origin
    mase_scale: np.ndarray  # (S,)
    seasonal: np.ndarray  # (S,) bool: Naive2 treated the series as seasonal
    residuals: np.ndarray | None = field(default=None)  # (K, H) scaled y - p, when Job.residuals


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
            f"model expects (input_size, horizon, features)={got} but the panel in data/prepared/ gives "
            f"{expected}; retrain or re-window (`dvc repro`)"
        )


def origins_available(panel: Panel, part: str = "test") -> int:
    """The fewest windows of ``part`` any series has: the origins every series can give."""
    count = panel.windows(part).count
    return int(count.min()) if count.size else 0


def window_index(panel: Panel, part: str, n_origins: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(series, start) of the windows scored, and each one's group (series, or series x origin).

    ``n_origins``: None takes every window; k takes k per series at evenly spaced positions of
    its windows (always the first and, for k >= 2, the last), as the one-series backtest does.
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


def naive2_parts(insample: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per series: seasonal (S,) and multiplicative indices (S, m) (ones when not seasonal), via m4."""
    seasonal = m4.seasonality_test(insample, m) & np.array([(x > 0).all() for x in insample], dtype=bool)
    si = np.ones((len(insample), m))
    if seasonal.any():
        si[seasonal] = m4.seasonal_indices([insample[i] for i in np.flatnonzero(seasonal)], m)
    return seasonal, si


def baseline_forecasts(
    panel: Panel, s: np.ndarray, origin: np.ndarray, si: np.ndarray, m: int
) -> dict[str, np.ndarray]:
    """Raw-unit forecasts (K, H) of the baselines from local ``origin`` rows of series ``s``."""
    H = panel.horizon
    target = panel.values[:, 0].astype(np.float64)
    base = panel.offsets[s]  # (K,)
    h = np.arange(1, H + 1)
    last = target[base + origin]  # (K,)
    back = origin[:, None] + h[None, :] - m * np.ceil(h / m).astype(np.int64)[None, :]  # (K, H)
    back = np.where(origin[:, None] + 1 >= m, back, origin[:, None])  # < m rows of history: naive
    phase = si.shape[1]
    rows = np.arange(len(s))[:, None]
    si_s = si[s]  # (K, m)
    adjusted = last / si_s[rows[:, 0], origin % phase]
    return {
        "repeat_last": np.repeat(last[:, None], H, axis=1),
        "seasonal_naive": target[base[:, None] + back],
        "naive2": adjusted[:, None] * si_s[rows, (origin[:, None] + h[None, :]) % phase],
    }


def _group_sum(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Sums of ``values`` (K,) or (K, D) per group: (G,) or (G, D)."""
    if values.ndim == 1:
        return np.bincount(group, weights=values, minlength=n_groups)
    out = np.zeros((n_groups, values.shape[1]))
    np.add.at(out, group, values)
    return out


def score_chunk(job: Job, chunk: Panel) -> ChunkScores:
    """Score the LSTM and the baselines on the windows of ``job.part`` in ``chunk`` (pure)."""
    m = job.period
    idx, group = window_index(chunk, job.part, job.n_origins)
    s, starts = idx[:, 0], idx[:, 1]
    n_groups = chunk.n_series * (job.n_origins or 1)
    x, y_scaled = chunk.gather(s, starts, scaled=True)  # (K, L, C), (K, H)
    p_scaled = predict_windows(job.model(), x, PREDICT_BATCH)  # (K, H)
    y_scaled = y_scaled.astype(np.float64)
    insample = chunk.histories(before="test")
    seasonal, si = (
        naive2_parts(insample, m) if m > 1 else (np.zeros(chunk.n_series, bool), np.ones((chunk.n_series, 1)))
    )
    origin = starts + chunk.input_size - 1
    raw = {MODEL_KEY: chunk.inverse_target(s, p_scaled)}
    raw.update(baseline_forecasts(chunk, s, origin, si, m))
    y_raw = chunk.gather(s, starts, scaled=False)[1].astype(np.float64)
    mean, std = chunk.mean[s, 0][:, None], chunk.std[s, 0][:, None]
    sums: dict[str, np.ndarray] = {}
    step_sse: dict[str, np.ndarray] = {}
    for name in FORECASTERS:
        err = raw[name] - y_raw  # (K, H) data units
        err_scaled = p_scaled - y_scaled if name == MODEL_KEY else (raw[name] - mean) / std - y_scaled
        per_window = {
            "sse_scaled": (err_scaled**2).sum(axis=1),
            "sae_scaled": np.abs(err_scaled).sum(axis=1),
            "sse": (err**2).sum(axis=1),
            "sae": np.abs(err).sum(axis=1),
            "smape": m4.smape(y_raw, raw[name]) if len(s) else np.zeros(0),
        }
        for stat, v in per_window.items():
            sums[f"{name}.{stat}"] = _group_sum(group, v, n_groups)
        step_sse[name] = _group_sum(group, err_scaled**2, n_groups)
    calibration = job.calibration()
    covered = np.zeros((n_groups, len(job.levels)))
    width = np.zeros((n_groups, len(job.levels)))
    if not calibration.empty:
        for i, level in enumerate(job.levels):
            lo, hi = calibration.bounds(p_scaled, level)
            covered[:, i] = _group_sum(group, ((y_scaled >= lo) & (y_scaled <= hi)).sum(axis=1), n_groups)
            width[:, i] = _group_sum(group, (hi - lo).sum(axis=1), n_groups)
    last_origin = np.full(n_groups, -1, dtype=np.int64)
    np.maximum.at(last_origin, group, origin)
    return ChunkScores(
        n_windows=np.bincount(group, minlength=n_groups).astype(np.int64),
        sums=sums,
        step_sse=step_sse,
        covered=covered,
        width=width,
        origin=last_origin,
        mase_scale=m4.mase_scale(insample, m),
        seasonal=seasonal,
        residuals=(y_scaled - p_scaled).astype(np.float32) if job.residuals else None,
    )


def concat(parts: list[ChunkScores]) -> ChunkScores:
    """The chunks' scores as one, in chunk (so series) order."""

    def cat(get: Any) -> np.ndarray:
        return np.concatenate([get(p) for p in parts])

    first = parts[0]
    res = [p.residuals for p in parts if p.residuals is not None]
    return ChunkScores(
        n_windows=cat(lambda p: p.n_windows),
        sums={k: cat(lambda p, k=k: p.sums[k]) for k in first.sums},
        step_sse={k: cat(lambda p, k=k: p.step_sse[k]) for k in first.step_sse},
        covered=cat(lambda p: p.covered),
        width=cat(lambda p: p.width),
        origin=cat(lambda p: p.origin),
        mase_scale=cat(lambda p: p.mase_scale),
        seasonal=cat(lambda p: p.seasonal),
        residuals=np.concatenate(res) if res else None,
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
    "BASELINES",
    "FORECASTERS",
    "MODEL_KEY",
    "ChunkScores",
    "Job",
    "baseline_forecasts",
    "check_model",
    "chunks_of",
    "concat",
    "naive2_parts",
    "origins_available",
    "panel_slice",
    "score_chunk",
    "score_panel",
    "window_index",
]
