"""Ensemble exploration on M4 hourly VALIDATION windows (last 48 h of the training series)."""

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for benchmarks.m4_accuracy
from benchmarks.m4_accuracy import m4_panel, trial_config
from tsforecast.training.step import fast_cpu_math
from tsforecast.training.train import fit

fast_cpu_math()
out = Path("/tmp/ablation/preds")
out.mkdir(parents=True, exist_ok=True)
base = {
    "train.windows_per_epoch": 16384,
    "train.epochs": 15,
    "train.loss": "mae",
    "model.window_norm": "mean_std",
}
members = [(168, 0), (168, 1), (168, 2), (96, 0), (336, 0)]
for L, seed in members:
    f = out / f"L{L}_s{seed}.npz"
    if f.exists():
        continue
    cfg = trial_config({**base, "window.input_size": L, "train.seed": seed})
    panel = m4_panel(cfg)
    t = time.time()
    model, info = fit(cfg, panel, torch.device("cpu"), progress=False)
    idx = panel.window_index("test")
    vidx = panel.window_index("val")
    with torch.no_grad():
        x, _ = panel.gather(idx[:, 0], idx[:, 1])
        p = model(torch.from_numpy(x)).numpy()
        xv, _ = panel.gather(vidx[:, 0], vidx[:, 1])
        pv = model(torch.from_numpy(xv)).numpy()
    np.savez(
        f,
        test=panel.inverse_target(idx[:, 0], p.astype(np.float64)),
        val=panel.inverse_target(vidx[:, 0], pv.astype(np.float64)),
        secs=time.time() - t,
        best_epoch=info["best_epoch"],
    )
    print(L, seed, round(time.time() - t), "s", info["best_epoch"], flush=True)
