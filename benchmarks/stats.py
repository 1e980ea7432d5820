"""Small statistics for the benchmark: the spread of per-pair numbers and a paired comparison
that says how large a difference it could have seen.

Pure functions of lists of floats; no numpy, no scipy (t quantiles are tabled).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

# Student t quantiles by degrees of freedom 1..20: two-sided 95 % (0.975) and 80 % power (0.80);
# beyond 20 the normal quantiles (1.960, 0.842) are within 5 %.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)  # fmt: skip
_T80 = (1.376, 1.061, 0.978, 0.941, 0.920, 0.906, 0.896, 0.889, 0.883, 0.879,
        0.876, 0.873, 0.870, 0.868, 0.866, 0.865, 0.863, 0.862, 0.861, 0.860)  # fmt: skip


def t_quantiles(df: int) -> tuple[float, float]:
    """(t at 0.975, t at 0.80) for ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"df={df} must be at least 1: a paired comparison needs two pairs")
    if df <= len(_T975):
        return _T975[df - 1], _T80[df - 1]
    return 1.960, 0.842


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and quartiles (IQR) of ``values``: how per-pair numbers spread."""
    if not values:
        raise ValueError("spread() needs at least one value")
    v = sorted(values)
    q1, q3 = (
        (statistics.quantiles(v, n=4, method="inclusive")[i] for i in (0, 2)) if len(v) > 1 else (v[0],) * 2
    )
    return {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q1, "q3": q3}


def paired_comparison(ours: list[float], ref: list[float], detect_rel: float = 0.04) -> dict[str, Any]:
    """Compare ``ours`` with ``ref`` pair by pair (same seed): mean difference, its standard error,
    a 95 % interval, and the smallest difference this many pairs could detect.

    ``min_detectable_diff`` is the difference a two-sided test at 5 % would find with 80 %
    power, given the spread of the paired differences: ``(t_.975 + t_.80) * se``. When it is
    larger than ``detect_rel`` of the reference mean, a "no difference" reading says little
    about differences of that size, and ``can_detect_rel`` is False.
    """
    if len(ours) != len(ref):
        raise ValueError(f"paired_comparison needs equal lengths, got {len(ours)} and {len(ref)}")
    diffs = [o - r for o, r in zip(ours, ref, strict=True)]
    ref_mean = statistics.fmean(ref)
    out: dict[str, Any] = {
        "n_pairs": len(diffs),
        "ours_mean": statistics.fmean(ours),
        "ref_mean": ref_mean,
        "ours_sd": statistics.stdev(ours) if len(ours) > 1 else None,
        "ref_sd": statistics.stdev(ref) if len(ref) > 1 else None,
        "diff_mean": statistics.fmean(diffs),
        "diff_rel": statistics.fmean(diffs) / ref_mean if ref_mean else None,
        "detect_rel_target": detect_rel,
    }
    if len(diffs) < 2:
        return {**out, "diff_se": None, "ci95": None, "min_detectable_diff": None,
                "min_detectable_rel": None, "can_detect_rel": False,
                "verdict": "one pair: no spread, nothing can be concluded"}  # fmt: skip
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    t975, t80 = t_quantiles(len(diffs) - 1)
    lo, hi = out["diff_mean"] - t975 * se, out["diff_mean"] + t975 * se
    mdd = (t975 + t80) * se
    mdd_rel = mdd / ref_mean if ref_mean else math.inf
    out.update(diff_se=se, ci95=[lo, hi], min_detectable_diff=mdd, min_detectable_rel=mdd_rel)
    out["can_detect_rel"] = mdd_rel <= detect_rel
    out["verdict"] = verdict(lo, hi, mdd_rel)
    return out


def verdict(lo: float, hi: float, mdd_rel: float) -> str:
    """Words for a paired interval [lo, hi] of ours - reference (lower is better)."""
    if lo > 0:
        return "ours higher (worse): the 95 % interval of the paired difference excludes 0"
    if hi < 0:
        return "ours lower (better): the 95 % interval of the paired difference excludes 0"
    return (
        "no difference detected; this comparison would detect (80 % power) only differences "
        f"of {mdd_rel:.0%} of the reference or more"
    )
