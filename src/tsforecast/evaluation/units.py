"""Axis labels with units: the builtin data sets' units are known, a user's file names its target."""

from __future__ import annotations

from tsforecast.config import BUILTIN_TAYLOR

# (data.path, data.target) -> unit of the target's values
UNITS: dict[tuple[str, str], str] = {
    (BUILTIN_TAYLOR, "demand"): "MW",  # Taylor (2003): electricity demand of England and Wales
}


def value_label(data_path: str, target: str) -> str:
    """``demand (MW)`` for a builtin data set with a known unit, else the target's name."""
    unit = UNITS.get((data_path, target))
    return f"{target} ({unit})" if unit else target
