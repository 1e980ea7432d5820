import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for benchmarks.m4_accuracy
from benchmarks.m4_accuracy import m4_panel, trial_config
from tsforecast.training.step import fast_cpu_math
from tsforecast.training.train import refit

fast_cpu_math()
base = {
    "train.windows_per_epoch": 16384,
    "train.epochs": 15,
    "train.loss": "mae",
    "model.window_norm": "mean_std",
}
L, seed, best = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = trial_config({**base, "window.input_size": L, "train.seed": seed})
panel = m4_panel(cfg)
t = time.time()
model, info = refit(cfg, panel, best, torch.device("cpu"), through="val", progress=False)
idx = panel.window_index("test")
with torch.no_grad():
    x, _ = panel.gather(idx[:, 0], idx[:, 1])
    p = model(torch.from_numpy(x)).numpy()
np.savez(
    f"/tmp/ablation/preds/refit_L{L}_s{seed}.npz",
    test=panel.inverse_target(idx[:, 0], p.astype(np.float64)),
    secs=time.time() - t,
)
print("refit", L, seed, round(time.time() - t), flush=True)
