"""How each broken per-series rule reads: one line naming the bad values, where they are, the fix.

The rules are the same for S >= 1 series; how a line reads is presentation. One series reads
as it always has: the timestamps and file rows at fault (the first :data:`SHOWN`, then a
count). Many series read as one line a rule naming the bad series (the first
:data:`~tsforecast.dataset.split.MAX_NAMED`, then a count), each with its first offender.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsforecast.config import DataConfig, SplitConfig, WindowConfig
from tsforecast.data.arrange import series_offset, stamp, stamp_index
from tsforecast.data.freq import modal_step
from tsforecast.data.series_facts import SeriesFacts
from tsforecast.dataset.split import MAX_NAMED, name_series, split_bounds, split_rows, too_short_error
from tsforecast.errors import DataError

SHOWN = 5  # offending values named per line of one series

GAP_RULE = "gaps (missing timestamps or empty values)"


def join(items: Sequence[str], total: int | None = None) -> str:
    """The first :data:`SHOWN` items and, past them, how many there are in all."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:SHOWN])
    return shown + (f", ... ({total} in all)" if total > SHOWN else "")


def rows_text(rows: Sequence[int]) -> str:
    """``row 3`` or ``rows 2, 3``."""
    return "row" + ("s " if len(rows) > 1 else " ") + ", ".join(str(int(r)) for r in rows)


@dataclass(frozen=True)
class Messages:
    """The failure line of each per-series rule, from the facts the vectorised pass found."""

    facts: SeriesFacts
    data: DataConfig
    split: SplitConfig
    window: WindowConfig
    source: str

    @property
    def one(self) -> bool:
        """One series: its lines name timestamps and rows, not series."""
        return self.facts.n_series == 1

    def _line(self, col: str, rule: str, detail: str, fix: str) -> str:
        return f"{self.source}: column '{col}': {rule}: {detail}; {fix}"

    def _series_line(self, col: str | list[str], n_bad: int, rule: str, items: list[str], fix: str) -> str:
        where = f"column '{col}'" if isinstance(col, str) else f"columns {list(col)}"
        total = self.facts.n_series
        return f"{self.source}: {where}: {n_bad} of {total} series {rule}: {name_series(items, n_bad)}; {fix}"

    def _named(self, mask: np.ndarray, describe: Callable[[int], str]) -> tuple[int, list[str]]:
        bad = np.flatnonzero(mask)
        return bad.size, [f"{self.facts.a.ids[i]} ({describe(i)})" for i in bad[:MAX_NAMED]]

    def _at(self, positions: np.ndarray) -> list[str]:
        """``<timestamp> (row <file row>)`` of arranged rows ``positions``."""
        a = self.facts.a
        rows = a.file_rows(positions)
        return [f"{stamp(a.ts[p], a.tz)} (row {r})" for p, r in zip(positions, rows, strict=True)]

    # ------------------------------------------------------------------ timestamps

    def no_frequency(self, result: dict[str, Any]) -> str:
        tsc = self.data.timestamp_column
        return (
            f"{self.source}: column '{tsc}': no series has two distinct timestamps, so the frequency "
            "cannot be inferred; set data.freq"
        )

    def repeated(self, result: dict[str, Any]) -> str:
        a, c, tsc = self.facts.a, self.facts.checks, self.data.timestamp_column
        if not self.one:
            n, items = self._named(
                c.dup > 0, lambda i: f"{c.dup[i]} repeated, e.g. {stamp(c.dup_at[i], a.tz)}"
            )
            fix = "timestamps must be unique within a series - drop or aggregate duplicates"
            return self._series_line(tsc, n, "repeat a timestamp", items, fix)
        stamps, first, counts = np.unique(a.ts, return_index=True, return_counts=True)  # ts: sorted
        groups = np.flatnonzero(counts > 1)
        items = []
        for g in groups[: SHOWN + 1]:
            rows = a.file_rows(np.arange(first[g], first[g] + counts[g]))
            items.append(f"{stamp(stamps[g], a.tz)} appears {counts[g]} times ({rows_text(rows[:SHOWN])})")
        return self._line(
            tsc, "values must be unique", join(items, groups.size), "drop or aggregate duplicates"
        )

    def out_of_order(self, result: dict[str, Any]) -> str:
        a, tsc = self.facts.a, self.data.timestamp_column
        back = a.out_of_order
        assert back is not None

        def pair(k: int) -> str:
            t, p, r = back.ts[k], back.prev_ts[k], back.rows[k]
            return f"{stamp(t, a.tz)} (row {r}) comes after {stamp(p, a.tz)} (row {r - 1})"

        if self.one:
            pairs = [pair(k) for k in range(min(SHOWN, back.rows.size))]
            return self._line(
                tsc,
                "values must be strictly increasing",
                join(pairs, back.rows.size),
                "sort the rows by time",
            )
        counts = self.facts.out_of_order()
        first = np.zeros(counts.size, dtype=np.int64)
        series, at = np.unique(back.series, return_index=True)
        first[series] = at  # each series' first row out of order
        n, items = self._named(counts > 0, lambda i: f"{counts[i]} rows, e.g. {pair(first[i])}")
        return self._series_line(
            tsc, n, "list rows out of time order", items, "sort the rows by series and time"
        )

    def step(self, result: dict[str, Any]) -> str:
        a, tsc, freq = self.facts.a, self.data.timestamp_column, self.data.freq
        offset = series_offset(a, "auto")
        alias = offset.freqstr if offset is not None else "unknown"
        fix = f"set data.freq={alias!r} or 'auto'"
        if not self.one:
            return self._line(
                tsc,
                f"values must step by data.freq={freq!r}",
                f"the panel's most common step is {alias}",
                fix,
            )
        count = modal_step(stamp_index(a.ts, a.tz))[1]
        detail = f"the most common step is {alias} ({count} of {a.ts.size - 1} steps)"
        return self._line(tsc, f"values must step by data.freq={freq!r}", detail, fix)

    def off_grid(self, result: dict[str, Any]) -> str:
        f, tsc = self.facts, self.data.timestamp_column
        assert f.grid is not None
        how = "inferred" if f.inferred else "data.freq"
        if not self.one:
            c = f.checks
            n, items = self._named(c.off > 0, lambda i: f"{c.off[i]} rows, e.g. {stamp(c.off_at[i], f.a.tz)}")
            rule = f"are off the panel's frequency ({f.grid.freq!r}, {how}; each series steps from its own first timestamp)"
            fix = "resample every series to one frequency" + (" or set data.freq" if f.inferred else "")
            return self._series_line(tsc, n, rule, items, fix)
        off = np.flatnonzero(f.grid.pos < 0)
        detail = f"off the grid from {stamp(f.grid.first_ts[0], f.a.tz)} every {f.grid.freq!r}: "
        fix = "resample to one frequency" + (
            " or set data.freq" if f.inferred else f" or change data.freq={self.data.freq!r}"
        )
        rule = f"values must follow one regular frequency ({f.grid.freq!r}, {how})"
        return self._line(tsc, rule, detail + join(self._at(off[:SHOWN]), off.size), fix)

    # ------------------------------------------------------------------ values

    def non_finite(self, col: int) -> Callable[[dict[str, Any]], str]:
        """The line of value column ``col`` (the target, then the covariates)."""

        def explain(result: dict[str, Any]) -> str:
            a, c, name = self.facts.a, self.facts.checks, self.facts.columns[col]
            fix = "replace them with numbers (or empty cells to have them interpolated)"
            if not self.one:
                n, items = self._named(
                    c.inf[:, col] > 0,
                    lambda i: f"{c.inf[i, col]} values, e.g. at {stamp(c.inf_at[i, col], a.tz)}",
                )
                return self._series_line(name, n, "hold non-finite values (inf)", items, fix)
            bad = np.flatnonzero(np.isinf(a.values[:, col]))
            shown = bad[:SHOWN]
            items = [f"{a.values[p, col]} at {at}" for p, at in zip(shown, self._at(shown), strict=True)]
            return self._line(name, "values must be finite", join(items, bad.size), fix)

        return explain

    def gaps(self, col: int) -> Callable[[dict[str, Any]], str]:
        """The line of value column ``col``; many series: one line for every column."""

        def explain(result: dict[str, Any]) -> str:
            f, fill = self.facts, self.data.fill_gaps
            if not self.one:
                return self._gaps_of_series()
            assert f.grid is not None
            runs = f.checks.runs[f.checks.runs[:, 1] == col]
            starts = f.grid.at(runs[:, 0], runs[:, 2])
            ends = f.grid.at(runs[:, 0], runs[:, 2] + runs[:, 3] - 1)
            items = [
                f"{k} missing steps from {stamp(s, f.a.tz)} to {stamp(e, f.a.tz)}"
                for k, s, e in zip(runs[:SHOWN, 3], starts, ends, strict=False)
            ]
            rule = f"{GAP_RULE} must be at most data.fill_gaps={fill}"
            fix = "fill them in the source, drop that stretch of rows, or raise data.fill_gaps"
            return self._line(f.columns[col], rule, join(items, len(runs)), fix)

        return explain

    def _gaps_of_series(self) -> str:
        f, c = self.facts, self.facts.checks
        long = c.long > 0  # (S, C): one line for every column (a missing timestamp is in all)
        first_col = long.argmax(axis=1)

        def describe(i: int) -> str:
            k = first_col[i]
            step, length = int(c.long_step[i, k]), int(c.long_len[i, k])
            assert f.grid is not None
            lo, hi = f.grid.at(np.array([i, i]), np.array([step, step + length - 1]))
            where = f" in '{f.columns[k]}'" if len(f.columns) > 1 else ""
            return f"{length} missing steps from {stamp(lo, f.a.tz)} to {stamp(hi, f.a.tz)}{where}"

        n, items = self._named(long.any(axis=1), describe)
        rule = f"have {GAP_RULE} longer than data.fill_gaps={self.data.fill_gaps}"
        fix = "fill them in the source, drop those series or stretches, or raise data.fill_gaps"
        return self._series_line(f.columns[0] if len(f.columns) == 1 else f.columns, n, rule, items, fix)

    def constant(self, result: dict[str, Any]) -> str:
        c, target = self.facts.checks, self.data.target
        if not self.one:
            n, items = self._named(c.flat, lambda i: f"every value is {c.flat_value[i]:g}")
            return self._series_line(
                target, n, "are constant", items, "a constant series cannot be forecast - drop these series"
            )
        detail = f"zero variance (every value is {c.flat_value[0]:g})"
        return self._line(target, "values must vary", detail, "a constant series cannot be forecast")

    def too_short(self, result: dict[str, Any]) -> str:
        f = self.facts
        sizes = f.sizes()
        try:
            if self.one:
                split_rows(int(sizes[0]), self.split, self.window)
            elif f.need is None:
                split_bounds(np.zeros(1, np.int64), self.split, self.window)
        except DataError as e:
            return f"{self.source}: {e}"
        short = f.short()
        lengths = np.nan_to_num(sizes).astype(np.int64)
        return f"{self.source}: {too_short_error(f.a.ids, lengths, short, int(f.need or 0))}"


__all__ = ["SHOWN", "Messages", "join", "rows_text"]
