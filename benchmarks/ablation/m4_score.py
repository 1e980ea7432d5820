import glob
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for benchmarks.m4_accuracy
from benchmarks.m4_accuracy import M, m4_panel, trial_config
from tsforecast.evaluation import m4

cfg = trial_config({"window.input_size": 168})
panel = m4_panel(cfg)
idx = panel.window_index("test")
_, actual = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
hist = panel.histories(before="test")


def owa(f):
    agg, _ = m4.panel_scores(actual, f, hist, M, ids=list(panel.ids))
    return agg["owa"], agg["smape"], agg["mase"]


preds = {p.split("/")[-1][:-4]: np.load(p)["test"] for p in sorted(glob.glob("/tmp/ablation/preds/*.npz"))}
for k, v in preds.items():
    print(k, "{:.4f} {:.2f} {:.3f}".format(*owa(v)))
names = list(preds)
for r in range(2, len(names) + 1):
    for combo in itertools.combinations(names, r):
        f = np.median(np.stack([preds[c] for c in combo]), axis=0)
        print("median", combo, "{:.4f} {:.2f} {:.3f}".format(*owa(f)))
