"""The CUDA training path, end to end, on a machine with a GPU: train + evaluate on data/prepared/.

    dvc repro window                       # on any machine: data/prepared/ for params.yaml
    python benchmarks/cuda_check.py        # on the CUDA host: table + benchmarks/cuda_check.json

Runs the same stage functions as `dvc repro train evaluate` (``run_train``, ``run_evaluate``)
with ``train.device: cuda`` in a scratch copy of the checkout, so nothing DVC tracks here
changes, and compares the test metrics with the CPU run committed in metrics/evaluate.json.
CUDA uses bf16 autocast where the GPU has it and never shards batches, so the numbers are
close to, not equal to, the CPU's. The JSON records the GPU, torch and CUDA versions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from tsforecast.config import load_config  # noqa: E402
from tsforecast.io import write_json  # noqa: E402
from tsforecast.paths import Paths  # noqa: E402
from tsforecast.stages import run_stage  # noqa: E402


def _scratch_checkout(tmp: Path) -> Paths:
    """params.yaml and data/prepared/ copied into ``tmp``: the stages write there, not here."""
    shutil.copy(ROOT / "params.yaml", tmp / "params.yaml")
    shutil.copytree(ROOT / "data" / "prepared", tmp / "data" / "prepared")
    return Paths.from_root(tmp)


def run(epochs: int | None) -> dict[str, Any]:
    overrides: dict[str, Any] = {"train.device": "cuda", "train.resume": False}
    if epochs is not None:
        overrides["train.epochs"] = epochs
    cfg = load_config(ROOT / "params.yaml", overrides=overrides)
    with tempfile.TemporaryDirectory(prefix="tsforecast-cuda-") as tmp:
        paths = _scratch_checkout(Path(tmp))
        t0 = time.perf_counter()
        train = run_stage("train", cfg, paths)
        run_stage("evaluate", cfg, paths)
        wall = time.perf_counter() - t0
        metrics = json.loads((paths.metrics / "evaluate.json").read_text())
        train_json = json.loads((paths.metrics / "train.json").read_text())
    cpu = json.loads((ROOT / "metrics" / "evaluate.json").read_text())
    cpu_train = json.loads((ROOT / "metrics" / "train.json").read_text())
    return {
        "device": train_json["device"],
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bf16": torch.cuda.is_bf16_supported(),
        "epochs": train.epochs,
        "best_epoch": train_json["best_epoch"],
        "train_seconds": train.train_seconds,
        "samples_per_second": train.samples_per_second,
        "train_evaluate_wall_s": round(wall, 2),
        "test_mse_scaled": metrics["mse_scaled"],
        "test_coverage_80": metrics["intervals"]["80"]["coverage"],
        "seasonal_naive_mse_scaled": metrics["baselines"]["seasonal_naive"]["mse_scaled"],
        "beats": metrics.get("beats"),
        "cpu_committed": {
            "test_mse_scaled": cpu["mse_scaled"],
            "test_coverage_80": cpu["intervals"]["80"]["coverage"],
            "train_seconds": cpu_train["train_seconds"],
            "samples_per_second": cpu_train["samples_per_second"],
            "device": cpu_train["device"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, help="override train.epochs (default: params.yaml's)")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "cuda_check.json")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA device here; run this on the GPU host", file=sys.stderr)
        return 1
    result = run(args.epochs)
    cpu = result["cpu_committed"]
    print(f"{'':24}{'CUDA (' + result['gpu'] + ')':>32}{'CPU (committed)':>18}")
    for label, key in (("test mse_scaled", "test_mse_scaled"), ("80 % coverage", "test_coverage_80")):
        print(f"{label:24}{result[key]:>32.5f}{cpu[key]:>18.5f}")
    print(f"{'train seconds':24}{result['train_seconds']:>32.1f}{cpu['train_seconds']:>18.1f}")
    print(f"{'train samples/s':24}{result['samples_per_second']:>32.0f}{cpu['samples_per_second']:>18.0f}")
    print(f"seasonal naive mse_scaled {result['seasonal_naive_mse_scaled']:.5f}; epochs {result['epochs']}")
    write_json(args.output, result)
    out = os.environ.get("OUT")
    if out:
        write_json(Path(out) / args.output.name, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
