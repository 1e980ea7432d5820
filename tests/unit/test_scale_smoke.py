"""benchmarks/scale.py: the summaries say what they claim, and a tiny run writes its JSON shape.

No timing is asserted: numbers from a shared machine mean nothing. The end-to-end run needs
the panel stages (ingest .. forecast with ``data.id_column``) and is marked slow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scale


def _cell(wall: float, peak: float, n: int) -> dict[str, Any]:
    return {
        "wall_s": wall,
        "wall_s_min": wall * 0.9,
        "wall_s_max": wall * 1.2,
        "peak_mb": peak,
        "peak_mb_min": peak - 1,
        "peak_mb_max": peak + 1,
        "process_s": wall + 3,
        "per_series_ms": 1e3 * wall / n,
        "n_runs": 3,
    }


def _rows() -> list[dict[str, Any]]:
    return [
        {"n_series": 1_000, "validate": _cell(2.0, 500, 1_000), "train": _cell(30.0, 900, 1_000)},
        {"n_series": 10_000, "validate": _cell(30.0, 1500, 10_000), "train": _cell(33.0, 950, 10_000)},
    ]


def test_growth_gives_time_per_series_and_memory_ratios() -> None:
    grow = scale.growth(_rows(), ["validate", "train"])
    assert set(grow) == {"1000->10000"}
    v, t = grow["1000->10000"]["validate"], grow["1000->10000"]["train"]
    assert v["time_x"] == pytest.approx(15.0) and v["per_series_x"] == pytest.approx(1.5)
    assert v["peak_mb_x"] == pytest.approx(3.0)
    assert t["time_x"] == pytest.approx(1.1) and t["per_series_x"] == pytest.approx(0.11)


def test_growth_leaves_out_a_stage_that_failed_at_either_size() -> None:
    rows = _rows()
    rows[1]["validate"] = {"error": "validate exited 1"}
    assert set(scale.growth(rows, ["validate", "train"])["1000->10000"]) == {"train"}


def test_targets_sum_the_stages_and_name_the_ones_that_are_not_flat() -> None:
    rows = _rows()
    grow = scale.growth(rows, ["validate", "train"])
    t = scale.targets(rows, ["validate", "train"], grow)
    assert t["total_wall_s"] == pytest.approx(63.0) and t["total_process_s"] == pytest.approx(69.0)
    assert t["max_peak_mb"] == 1500 and t["within_time"] and t["within_memory"]
    assert t["not_flat_1000_to_10000"] == ["validate"]


def test_a_failed_stage_is_never_within_the_targets() -> None:
    rows = _rows()
    rows[1]["train"] = {"error": "train exited 1"}
    t = scale.targets(rows, ["validate", "train"], scale.growth(rows, ["validate", "train"]))
    assert t["stages_measured"] == ["validate"] and not t["all_stages_ran"]
    assert not t["within_time"] and not t["within_memory"]


def test_the_table_shows_medians_spreads_and_failures() -> None:
    rows = _rows()
    rows[0]["train"] = {"error": "boom"}
    rows[1]["validate"]["runs_with_child_processes"] = 2
    grow = scale.growth(rows, ["validate", "train"])
    result = {
        "sizes": rows,
        "growth_per_10x": grow,
        "targets": scale.targets(rows, ["validate", "train"], grow),
        "config": {"stages": ["validate", "train"]},
    }
    text = scale.table(result)
    assert "30.00 (27.00-36.00)" in text and "1500 (1499-1501)" in text and "failed" in text
    assert "3 (2 with Dask workers)" in text
    assert "growth 1000->10000: validate x15.00 (1.50/series)" in text
    md = scale.table(result, markdown=True)
    assert md.startswith("| stage | series |") and "| validate | 10,000 | 30.00 (27.00-36.00) | 3.000 |" in md


def test_set_overrides_parse_as_yaml_and_bad_ones_are_named() -> None:
    assert scale.parse_set(["train.batch_size=256", "data.covariates=[a, b]"]) == {
        "train": {"batch_size": 256},
        "data": {"covariates": ["a", "b"]},
    }
    with pytest.raises(SystemExit, match=r"--set 'epochs=3' is not section.key=value"):
        scale.parse_set(["epochs=3"])


def test_the_scratch_repo_holds_the_panel_params_and_the_data(tmp_path: Path) -> None:
    import pandas as pd
    import yaml

    info = scale.make_repo(tmp_path, 5, {"train": {"batch_size": 32}})
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["data"]["id_column"] == "unique_id" and params["train"]["epochs"] == 1
    assert params["train"]["windows_per_epoch"] == 16_384 and params["train"]["batch_size"] == 32
    assert (
        params["model"]["hidden_size"]
        == yaml.safe_load(Path("params.yaml").read_text())["model"]["hidden_size"]
    )
    frame = pd.read_parquet(params["data"]["path"])
    sizes = frame.groupby("unique_id", observed=True).size()
    assert len(frame) == info["n_rows"] and sizes.between(800, 1200).all()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_tiny_run_measures_every_stage_through_the_stage_table(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = ["--sizes", "6", "12", "--repeats", "1", "--output", str(out), "--workdir", str(tmp_path)]
    argv += ["--set", "train.windows_per_epoch=256", "--set", "model.hidden_size=8"]
    assert scale.main(argv) == 0
    result = json.loads(out.read_text())
    assert [r["n_series"] for r in result["sizes"]] == [6, 12]
    for row in result["sizes"]:
        for stage in scale.STAGES:
            cell = row[stage]
            assert "error" not in cell, cell.get("error")
            assert cell["wall_s"] > 0 and cell["peak_mb"] >= cell["rss_imports_mb"] > 0
            assert cell["wall_s_min"] <= cell["wall_s"] <= cell["wall_s_max"] and len(cell["runs"]) == 1
            assert cell["runs_with_child_processes"] == 0  # a dozen series never start a Dask cluster
    assert set(result["growth_per_10x"]["6->12"]) == set(scale.STAGES)
    assert result["targets"]["all_stages_ran"] and math.isfinite(result["targets"]["total_wall_s"])
    assert not list(tmp_path.glob("pscale-*")), "scratch folders are removed"


def test_the_threads_comparison_gives_the_default_over_the_pinned_time() -> None:
    rows = _rows()
    pinned = {"n_series": 10_000, "validate": _cell(10.0, 1400, 10_000), "train": {"error": "boom"}}
    cmp = scale.compare_threads(rows[1], pinned, 1, ["validate", "train"])
    assert cmp["threads"] == 1 and cmp["n_series"] == 10_000
    assert cmp["default_over_threads_time_x"] == {"validate": pytest.approx(3.0)}
    grow = scale.growth(rows, ["validate", "train"])
    result = {
        "sizes": rows,
        "growth_per_10x": grow,
        "targets": scale.targets(rows, ["validate", "train"], grow),
        "config": {"stages": ["validate", "train"]},
        "threads_comparison": cmp,
    }
    assert "OMP_NUM_THREADS=1 at 10,000 series: validate 10.00 (9.00-12.00) s" in scale.table(result)
