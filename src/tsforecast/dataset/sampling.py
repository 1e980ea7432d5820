"""Global training sampler: an epoch is a fixed number of windows drawn across every series.

An epoch holds ``windows_per_epoch`` windows, drawn with replacement, so its cost is the
same for 100 or 1,000,000 series (a panel's full window set grows with it). Draws depend
only on ``(seed, epoch)``: an interrupted run resumes at any epoch (and any batch of it)
with the very windows it would have seen.

Two weightings (``weighting``):

- ``"series"`` (default): pick a series uniformly, then a window uniformly inside it. Each
  series weighs the same, whatever its length. This is what the global models of the
  literature do: N-BEATS samples "a time series id uniformly from the training set, then a
  forecast point from its history" (Oreshkin et al., ICLR 2020, section 3 / appendix on
  training); neuralforecast's windows-based models draw ``batch_size`` series, then
  ``windows_batch_size`` windows from them; GluonTS (DeepAR) iterates over series and
  lets an instance sampler pick windows inside each. It also matches the objective: M4's
  sMAPE/MASE/OWA average over series, so a 10-year series should not count 10x a 1-year one.
- ``"windows"``: every window of the panel equally likely, so a series weighs in proportion
  to its number of windows (about its length). Useful when series are comparable samples of
  one process and long histories are simply more data.

Both are vectorised: ``"series"`` draws (series, k) from two uniform arrays; ``"windows"``
maps a uniform window number to its series with ``searchsorted`` over the (S,) cumulative
counts. Nothing of size "all windows" is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tsforecast.dataset.panel import WindowRanges
from tsforecast.errors import DataError

Weighting = Literal["series", "windows"]
WEIGHTINGS: tuple[str, ...] = ("series", "windows")


@dataclass(frozen=True)
class WindowSampler:
    """Draws ``windows_per_epoch`` training windows per epoch from per-series window ranges."""

    ranges: WindowRanges
    windows_per_epoch: int
    seed: int = 0
    weighting: Weighting = "series"
    _eligible: np.ndarray = field(init=False, repr=False)  # (S',) series with >= 1 window
    _cum: np.ndarray = field(init=False, repr=False)  # (S,) cumulative window counts

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting={self.weighting!r} must be one of {WEIGHTINGS}")
        n = self.windows_per_epoch
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"windows_per_epoch={n!r} must be a positive integer")
        if self.ranges.total == 0:
            raise DataError(
                "the panel has no training windows; lower window.input_size/horizon or raise split.train"
            )
        object.__setattr__(self, "_eligible", np.flatnonzero(self.ranges.count > 0))
        object.__setattr__(self, "_cum", np.cumsum(self.ranges.count))

    def probabilities(self) -> np.ndarray:
        """(S,) chance that one draw lands in each series (for reports and tests)."""
        count = self.ranges.count.astype(np.float64)
        if self.weighting == "windows":
            return count / count.sum()
        return (count > 0) / float(self._eligible.size)

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's windows as ``(series_idx, starts)``, each (windows_per_epoch,) int64."""
        if epoch < 0:
            raise ValueError(f"epoch={epoch} must be >= 0")
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(epoch)]))
        n = int(self.windows_per_epoch)
        if self.weighting == "series":
            s = self._eligible[rng.integers(0, self._eligible.size, n)]
            k = (rng.random(n) * self.ranges.count[s]).astype(np.int64)  # uniform in [0, count)
            k = np.minimum(k, self.ranges.count[s] - 1)  # guards a float round-up to count
        else:
            g = rng.integers(0, int(self._cum[-1]), n)  # a window number over the whole panel
            s = np.searchsorted(self._cum, g, side="right")
            k = g - (self._cum[s] - self.ranges.count[s])
        return s.astype(np.int64), self.ranges.starts(s, k)

    def n_batches(self, batch_size: int) -> int:
        return -(-int(self.windows_per_epoch) // int(batch_size))

    def batches(
        self, epoch: int, batch_size: int, start_batch: int = 0
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch in batches of ``(series_idx, starts)``; ``start_batch`` resumes mid-epoch."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        s, st = self.epoch(epoch)
        for b in range(start_batch, self.n_batches(batch_size)):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            yield s[sl], st[sl]


__all__ = ["WEIGHTINGS", "WindowSampler", "Weighting"]
