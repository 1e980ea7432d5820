"""What the vectorised pass finds, series by series: the facts the series suite checks and names.

:func:`series_facts` arranges the long frame (:mod:`tsforecast.data.arrange`), finds the one
frequency, places every row on its series' grid and runs the per-series rules in chunks
(:func:`tsforecast.data.series_checks.check_series`, on Dask at ``orchestration.dask_address``).
:meth:`SeriesFacts.table` is the frame Great Expectations validates, one row a series;
:func:`validated_frame` is the long frame written when every rule holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.data.arrange import Arranged, Grid, arrange, grid_positions, modal_steps, series_offset
from tsforecast.data.series_checks import ChunkChecks, check_series
from tsforecast.dataset.long import id_column
from tsforecast.dataset.split import min_rows


@dataclass(frozen=True)
class SeriesFacts:
    """The arranged series, their grid and what every per-series rule found."""

    a: Arranged
    columns: list[str]  # the value columns checked: the target, then the usable covariates
    grid: Grid | None  # None: no series has two distinct timestamps to infer the frequency from
    inferred: bool  # the frequency was inferred (data.freq: auto)
    step: np.ndarray | None  # (S,) each series' most common step in data.freq units (data.freq given)
    checks: ChunkChecks
    need: int | None  # rows a series needs for the split and the window; None: no count will do

    @property
    def n_series(self) -> int:
        return len(self.a.ids)

    @property
    def steps_ok(self) -> bool:
        """Whether data.freq is the data's step: the most common of the series' own most common
        steps is one step of it (ties allowed; always, for an inferred frequency)."""
        if self.step is None or np.isnan(self.step).all():
            return True
        values, counts = np.unique(self.step[~np.isnan(self.step)], return_counts=True)
        return bool(counts[values == 1.0].sum() == counts.max())

    @property
    def grid_known(self) -> bool:
        """Whether every series has a grid to check steps, gaps and lengths on."""
        return self.grid is not None and self.steps_ok

    def sizes(self) -> np.ndarray:
        """(S,) float: each series' rows on its grid, NaN while its grid is unknown."""
        known = self.checks.sound & self.grid_known
        return np.where(known, self.checks.size, np.nan)

    def short(self) -> np.ndarray:
        """(S,) bool: series too short for the split and the window (once their grid is known)."""
        sizes = self.sizes()
        need = np.inf if self.need is None else self.need
        return ~np.isnan(sizes) & (sizes < need)

    def out_of_order(self) -> np.ndarray:
        """(S,) rows each series gives before an earlier timestamp of its own (file order)."""
        back = self.a.out_of_order
        series = back.series if back is not None else np.zeros(0, np.int64)
        return np.bincount(series, minlength=self.n_series)

    def bad(self) -> np.ndarray:
        """(S,) bool: the series breaks a rule."""
        return self.checks.bad | self.short() | (self.out_of_order() > 0)

    def table(self, data: DataConfig) -> pd.DataFrame:
        """One row a series (indexed by id): the numbers the series suite checks."""
        c, tsc = self.checks, data.timestamp_column
        table = {
            f"{tsc}.distinct": self.a.lengths - c.dup,
            f"{tsc}.repeated": c.dup,
            f"{tsc}.out_of_order": self.out_of_order(),
            f"{tsc}.step": self.step if self.step is not None else np.full(self.n_series, np.nan),
            f"{tsc}.off_grid": c.off,
            **{f"{col}.non_finite": c.inf[:, k] for k, col in enumerate(self.columns)},
            **{f"{col}.longest_gap": c.longest[:, k] for k, col in enumerate(self.columns)},
            f"{data.target}.spread": c.spread,
            f"{tsc}.rows": self.sizes(),
        }
        return pd.DataFrame(table, index=self.a.ids)


def series_facts(
    long: pd.DataFrame,
    data: DataConfig,
    columns: list[str],
    split: SplitConfig,
    window: WindowConfig,
    address: str | None,
) -> SeriesFacts:
    """Arrange the long frame, find the frequency and each row's grid step, run the per-series
    rules in chunks (maybe on Dask at ``address``) (pure)."""
    a = arrange(long, data, columns)
    offset = series_offset(a, data.freq)
    grid = grid_positions(a, offset) if offset is not None else None
    pos = grid.pos if grid is not None else np.full(a.ts.size, -1, dtype=np.int64)
    step = modal_steps(pos, a.lengths) if grid is not None and data.freq != "auto" else None
    calendar = (grid.calendar, grid.first_step) if grid is not None else (None, None)
    checks = check_series(a.lengths, a.ts, pos, a.values, data.fill_gaps, address, *calendar)
    return SeriesFacts(a, columns, grid, data.freq == "auto", step, checks, min_rows(split, window))


def validated_frame(facts: SeriesFacts, data: DataConfig) -> pd.DataFrame:
    """The long frame on every series' grid: id (categorical text), timestamp, float64 columns."""
    a, grid, checks = facts.a, facts.grid, facts.checks
    assert checks.values is not None and grid is not None
    stamps = pd.DatetimeIndex(grid.timestamps(checks.size).view("datetime64[ns]"))
    if a.tz is not None:
        stamps = stamps.tz_localize("UTC").tz_convert(a.tz)
    codes = np.repeat(np.arange(len(a.ids), dtype=np.int32), checks.size)
    frame = {
        id_column(data): pd.Categorical.from_codes(codes, categories=a.ids),
        data.timestamp_column: stamps.as_unit(a.unit) if a.unit != "ns" else stamps,
    }
    for c, col in enumerate(facts.columns):
        frame[col] = checks.values[:, c]
    return pd.DataFrame(frame)


__all__ = ["SeriesFacts", "series_facts", "validated_frame"]
