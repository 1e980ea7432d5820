"""benchmarks/panel_scale.py runs end to end at a tiny size and writes its JSON shape.

No timing is asserted: numbers from a shared machine mean nothing; the script checks itself
that the Dask results equal the in-process ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import panel_scale


@pytest.mark.slow
def test_panel_scale_writes_every_step_for_every_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    assert panel_scale.main(["--sizes", "8", "16", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [r["n_series"] for r in result["sizes"]] == [8, 16]
    for row in result["sizes"]:
        for step in panel_scale.STEPS:
            assert row[step]["wall_s"] > 0 and row[step]["rss_peak_mb"] > 0
    assert set(result["growth_per_10x"]) == {"8->16"}
    assert len(result["machine"]["load_average_before"]) == 3
