"""`tsforecast replay` on a small synthetic series: the nightly logic round by round, in-process.

One replay with a level shift injected into the held-back rows and one without, each run once
per module (the real stages: ingest .. register and forecast, a tiny LSTM, a sqlite MLflow store
in the replay's scratch root); a third is killed mid-round.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tsforecast.config import load_config
from tsforecast.monitoring.replay import run_replay
from tsforecast.paths import Paths

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
H = 6
ROUNDS = 4
PARAMS = {
    "data": {"path": "data/external/series.csv", "target": "y", "timestamp_column": "timestamp"},
    "split": {"train": 0.7, "val": 0.1, "test": 0.2, "lookback": True},
    "window": {"input_size": 24, "horizon": H},
    "model": {"hidden_size": 8, "num_layers": 1, "dropout": 0.0},
    "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "patience": 3, "device": "cpu", "resume": False},
    "evaluate": {"seasonal_period": 24, "plot_windows": 1},
    "register": {"model_name": "replay-lstm", "max_retries": 1, "retry_backoff_s": 0.1},
}
SHIFT = 0.3  # the load moves up by 30 %: about two train standard deviations of this series


def _checkout(root: Path) -> Path:
    """A user's checkout: params.yaml and a 600-row hourly sine under data/external/."""
    (root / "data" / "external").mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(600)
    y = 50 + 10 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, t.size)
    ts = pd.date_range("2024-01-01", periods=t.size, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": ts, "y": y.round(4)}).to_csv(root / "data/external/series.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    return root


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the checkout outside the replay's own outputs, with its hash."""
    skip = ("reports/replay.json", "plots/replay.png")
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not str(p.relative_to(root)).startswith((".replay", *skip))
    }


def _replay(tmp: Path, shift: float) -> tuple[Path, dict, dict[str, str]]:
    root = _checkout(tmp / "repo")
    before = _snapshot(root)
    cfg, paths = load_config(root / "params.yaml"), Paths.from_root(root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    run_replay(cfg, paths, ROUNDS, shift=shift)
    return root, json.loads((root / "reports" / "replay.json").read_text()), before


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, str]]:
    return _replay(tmp_path_factory.mktemp("shifted"), SHIFT)


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, str]]:
    return _replay(tmp_path_factory.mktemp("steady"), 0.0)


def _champion_changes_only_after_an_accepted_retrain(report: dict) -> None:
    before = report["bootstrap"]["champion_version"]
    for r in report["rounds"]:
        accepted = r["decision"]["retrain"] and bool((r["gate"] or {}).get("champion"))
        assert (r["champion_version"] != before) == accepted, r
        before = r["champion_version"]


def test_replay_json_holds_every_round_with_the_contract_keys(shifted) -> None:
    root, report, _ = shifted

    assert report["finished"] and [r["round"] for r in report["rounds"]] == list(range(1, ROUNDS + 1))
    keys = [
        "round",
        "origin",
        "rows_added",
        "realized_mse_scaled",
        "expected_upper",
        "decision",
        "champion_version",
    ]
    for r in report["rounds"]:
        assert list(r)[:7] == keys
        assert (
            r["rows_added"] == H and set(r["decision"]) == {"retrain", "reasons"} and r["decision"]["reasons"]
        )
    origins = [pd.Timestamp(r["origin"]) for r in report["rounds"]]
    assert all(b - a == pd.Timedelta(hours=H) for a, b in zip(origins, origins[1:], strict=False))
    assert (root / "plots" / "replay.png").stat().st_size > 10_000


def test_an_injected_level_shift_is_flagged_within_two_rounds_and_triggers_a_retrain(shifted) -> None:
    _, report, _ = shifted

    first = next(r for r in report["rounds"] if r["decision"]["retrain"])

    assert first["round"] <= 2
    assert first["retrained"] and first["gate"]["version"] is not None
    assert any(x.startswith(("realized mse_scaled", "drift in")) for x in first["decision"]["reasons"])
    flagged = report["rounds"][0]
    assert flagged["realized_mse_scaled"] > flagged["expected_upper"], "round 1 scores the pre-shift forecast"


def test_the_champion_changes_only_in_rounds_that_decided_a_retrain_and_whose_gate_accepted(shifted) -> None:
    _champion_changes_only_after_an_accepted_retrain(shifted[1])


def test_without_a_shift_a_retrain_happens_only_for_a_stated_reason(steady) -> None:
    _, report, _ = steady

    for r in report["rounds"]:
        if r["decision"]["retrain"]:
            assert r["decision"]["reasons"] and not r["decision"]["reasons"][0].startswith(
                "keep the champion"
            )
        else:
            assert r["decision"]["reasons"][0].startswith("keep the champion: ")
    _champion_changes_only_after_an_accepted_retrain(report)
    assert report["rounds"][-1]["realized_mse_scaled"] < report["rounds"][-1]["expected_upper"]


def test_every_archived_forecast_s_realized_mae_is_recomputed_from_the_archive_and_the_data(shifted) -> None:
    _, report, _ = shifted
    scratch = Path(report["scratch"])
    data = pd.read_parquet(scratch / "data" / "validated" / "data.parquet")
    monitor = json.loads((scratch / "metrics" / "monitor.json").read_text())
    by_file = {o["file"]: o for o in monitor["by_origin"]}

    files = sorted((scratch / "forecasts" / "archive").glob("*.parquet"))
    assert len(files) == ROUNDS + 1  # the bootstrap's forecast and one per round
    for f in files:
        arch = pd.read_parquet(f)
        joined = arch.merge(data, on="timestamp")
        if joined.empty:
            continue  # the last forecast: nothing arrived yet
        mae = float(np.mean(np.abs(joined["y"] - joined["forecast"])))
        assert by_file[f.name]["mae"] == pytest.approx(mae, abs=1e-6), f.name
        assert by_file[f.name]["steps_observed"] == len(joined)


def test_the_user_s_own_outputs_are_untouched(shifted, steady) -> None:
    for root, _, before in (shifted, steady):
        assert _snapshot(root) == before
        assert not (root / "forecasts").exists() and not (root / "mlflow.db").exists()


def test_killing_a_replay_mid_round_loses_no_archived_forecast_and_leaves_no_partial_file(
    tmp_path: Path,
) -> None:
    root = _checkout(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsforecast", "replay", "--rounds", "3", "--root", str(root)],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    report_path = root / "reports" / "replay.json"
    deadline = time.monotonic() + 600
    while not (report_path.is_file() and json.loads(report_path.read_text())["rounds"]):
        assert proc.poll() is None and time.monotonic() < deadline, "the replay ended before round 1"
        time.sleep(0.2)
    time.sleep(1.0)  # well into round 2

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)

    report = json.loads(report_path.read_text())
    assert not report["finished"] and len(report["rounds"]) >= 1
    folder = Path(report["scratch"]) / "forecasts" / "archive"
    files = sorted(folder.glob("*.parquet"))
    assert len(files) >= 2, "the bootstrap's forecast and round 1's are kept"
    for f in files:
        assert len(pd.read_parquet(f)) == H, f"{f.name} is complete"
    assert all(p.name.startswith(".") for p in folder.iterdir() if p not in files)
