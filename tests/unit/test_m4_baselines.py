"""benchmarks/m4_baselines.py: validation windows from the training series only; the committed JSON is current."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import m4_baselines


def test_validation_split_holds_out_the_last_48_values_of_each_series() -> None:
    series = [np.arange(100.0), np.arange(60.0)]
    history, actuals = m4_baselines.validation_split(series, 48)
    assert [h.size for h in history] == [52, 12]
    assert actuals.tolist() == [list(range(52, 100)), list(range(12, 60))]


def test_validation_split_names_series_too_short_to_fit() -> None:
    with pytest.raises(ValueError, match=r"series \[1\] have no more than 48 values"):
        m4_baselines.validation_split([np.arange(100.0), np.arange(48.0)], 48)


def test_script_writes_the_committed_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m4.json"
    assert m4_baselines.main(["--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written == json.loads(m4_baselines.DEFAULT_OUTPUT.read_text())
    assert written["n_series"] == 414
    assert written["methods"]["naive2"]["owa"] == 1.0
    assert written["methods"]["seasonal_naive"]["owa"] < 0.7
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["method", "sMAPE", "MASE", "OWA"]
    assert "seasonal_naive" in table
