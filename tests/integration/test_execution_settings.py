"""Where the work runs is not a result (issue 19, items 3 and 4).

``orchestration.dask_address`` is in no stage's DVC ``params:``: setting it leaves ``dvc status``
clean; ``TSFORECAST_DASK_ADDRESS`` overrides it; a panel validated on a real Dask cluster writes
what an in-process run writes; and a scheduler that cannot be reached exits 75 (EX_TEMPFAIL),
so that the Prefect flows retry it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers.dask_cluster import executed_counts
from tests.helpers.processes import free_port
from tests.integration.test_dask import scheduler  # noqa: F401  (the fixture)
from tests.integration.test_dvc_repro import set_param
from tsforecast.parallel import DASK_ADDRESS_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_setting_the_dask_address_leaves_dvc_status_clean(repo_copy: Path, dvc) -> None:
    set_param(repo_copy, "orchestration.dask_address", "tcp://10.0.0.1:8786")
    assert json.loads(dvc("status", "--json").stdout or "{}") == {}
    set_param(repo_copy, "orchestration.train_pool", "gpu")
    assert json.loads(dvc("status", "--json").stdout or "{}") == {}


def panel_repo(root: Path, address: str | None) -> Path:
    """A repo folder with a 5-series hourly panel (``panel.csv``) and params.yaml naming it."""
    root.mkdir(parents=True)
    rows = []
    for i in range(5):
        ts = pd.date_range("2001-01-01", periods=100, freq="h") + pd.Timedelta(hours=i)
        y = 100.0 * (i + 1) + 10 * np.sin(np.arange(100) * 2 * np.pi / 12)
        rows.append(pd.DataFrame({"sid": f"s{i}", "timestamp": ts, "y": y.round(3)}))
    frame = pd.concat(rows, ignore_index=True)
    frame = frame.drop(index=[7, 170])  # one gap in each of two series: filled, and named in the report
    frame.to_csv(root / "panel.csv", index=False)
    params = {
        "data": {"path": "panel.csv", "id_column": "sid", "target": "y"},
        "split": {"train": 0.6, "val": 0.2, "test": 0.2},
        "window": {"input_size": 12, "horizon": 4},
        "evaluate": {"seasonal_period": 12},
        "orchestration": {"dask_address": address},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def tsforecast(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m tsforecast <args>`` in ``root``, with this checkout's package."""
    base = {k: v for k, v in os.environ.items() if k != DASK_ADDRESS_ENV}
    base["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    base["TQDM_DISABLE"] = "1"
    cmd = [sys.executable, "-m", "tsforecast", *args, "--root", str(root)]
    return subprocess.run(
        cmd, cwd=root, env={**base, **(env or {})}, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("where", ["params.yaml", DASK_ADDRESS_ENV])
def test_validate_of_a_panel_with_a_dead_scheduler_exits_75_with_one_line(tmp_path: Path, where: str) -> None:
    dead = f"tcp://127.0.0.1:{free_port()}"
    root = panel_repo(tmp_path / "repo", dead if where == "params.yaml" else None)
    assert tsforecast(root, "ingest").returncode == 0
    env = {DASK_ADDRESS_ENV: dead} if where == DASK_ADDRESS_ENV else {}
    proc = tsforecast(root, "validate", env=env)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 75, proc.stderr
    assert len(errors) == 1 and f"cannot reach the Dask scheduler at {dead}" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "data/validated").exists()


def test_a_panel_validated_on_the_cluster_the_environment_names_equals_the_in_process_run(
    tmp_path: Path,
    scheduler: str,  # noqa: F811
) -> None:
    outputs = {}
    before = sum(executed_counts(scheduler).values())
    for name, env in (("local", {}), ("dask", {DASK_ADDRESS_ENV: scheduler})):
        root = panel_repo(tmp_path / name, None)  # params.yaml: null; the environment moves the work
        for stage in ("ingest", "validate"):
            proc = tsforecast(root, stage, env=env)
            assert proc.returncode == 0, proc.stderr
        outputs[name] = root
    assert sum(executed_counts(scheduler).values()) > before, "no chunk ran on the cluster's workers"
    local, dask = outputs["local"], outputs["dask"]
    for out in ("data/validated/data.parquet", "data/validated/meta.json", "reports/validation.json"):
        assert (dask / out).read_bytes() == (local / out).read_bytes(), out
    report = json.loads((local / "reports/validation.json").read_text())
    assert report["success"] and report["n_filled"] == 2
