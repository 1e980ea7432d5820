"""Accuracy of the global LSTM on M4 hourly VALIDATION windows: a logged search, never the test set.

    python benchmarks/m4_accuracy.py --set window.input_size=168 --seeds 0   # one trial, logged
    python benchmarks/m4_accuracy.py --final --set ... --seeds 0 1 2          # the chosen config
    python benchmarks/m4_accuracy.py --table                                  # print the log
    python benchmarks/m4_accuracy.py --table --final --set ...                # re-summarise, no training
    python benchmarks/m4_accuracy.py --quick                                  # 5-series smoke test

Carving (``benchmarks/m4_baselines.py``'s, one level deeper): of each of the 414 embedded
TRAINING series, the last 48 hours are the scored target (the panel's ``test`` part), the 48
before them the early-stopping part (``val``), and every hour before those is training data
(``train``), each series scaled on its own train rows. That is the pipeline's panel split with
``split.val=48, split.test=48`` run on the training series, so the M4 test set is never read.
Scores: sMAPE, MASE (m = 24) and OWA against Naive2 (``tsforecast.evaluation.m4``) on the same windows as
the baselines. Every trial (``--set`` overrides of params.yaml on top of the M4 protocol, one
seed) is appended to ``benchmarks/m4_accuracy.json`` (a rerun replaces its entry); ``--final``
also records the config's median and range over its seeds and the matching ``dvc exp run`` line.

Training is the pipeline's own code path, ``tsforecast.training.train.fit`` (``WindowSampler``
epochs of ``train.windows_per_epoch`` windows, early stopping on the val windows' MSE, the best
epoch's weights kept), so the numbers are what ``dvc exp run`` with the same params trains. The
first trials of the log ran before it landed, on a small loop over the same parts; each trial
names its ``trainer`` (``panel_train.fit_panel`` is the same function before its rename).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from tsforecast.config import Config, load_config
from tsforecast.data.datasets import M4_HOURLY_HORIZON, M4_HOURLY_SEASONALITY, load_m4_hourly
from tsforecast.dataset.panel import Panel, build_panel
from tsforecast.evaluation import m4
from tsforecast.io import read_json, write_json
from tsforecast.training.model import LSTMForecaster
from tsforecast.training.step import fast_cpu_math
from tsforecast.training.train import fit as fit_global

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = HERE / "m4_accuracy.json"
H, M = M4_HOURLY_HORIZON, M4_HOURLY_SEASONALITY
# The M4 hourly protocol as pipeline params. With row counts the panel's train part is every row
# before val (docs/many-series.md); split.train is only the least a series must have there.
PROTOCOL: dict[str, Any] = {
    "data.path": "builtin:m4-hourly",
    "data.id_column": "unique_id",
    "data.target": "value",
    "split.train": 400,
    "split.val": H,
    "split.test": H,
    "window.horizon": H,
    "evaluate.seasonal_period": M,
    "train.device": "cpu",
}
QUICK: dict[str, Any] = {
    "window.input_size": 48,
    "split.train": 96,
    "model.hidden_size": 8,
    "model.num_layers": 1,
    "train.epochs": 2,
    "train.windows_per_epoch": 64,
    "train.batch_size": 32,
}
PINNED = (
    "window.input_size",
    "model.cell",
    "model.hidden_size",
    "model.num_layers",
    "model.dropout",
    "model.window_norm",
    "model.linear_skip",
    "train.epochs",
    "train.batch_size",
    "train.lr",
    "train.loss",
    "train.windows_per_epoch",
    "train.sample_by",
)
TRAINER = "tsforecast.training.train.fit"
# the same trainer under its name before panel_train.py merged into train.py (same body, same numbers)
SAME_TRAINER = frozenset({TRAINER, "tsforecast.training.panel_train.fit_panel"})
PUBLISHED_TEST_OWA = {"seasonal_naive": 0.628, "winner_es_rnn": 0.440}


def trial_config(overrides: dict[str, Any], params: Path = ROOT / "params.yaml") -> Config:
    """params.yaml + the M4 protocol + ``overrides`` (dotted keys, as ``dvc exp run -S``)."""
    return load_config(params, {**PROTOCOL, **overrides})


def whole_history_train(panel: Panel) -> Panel:
    """The panel with each series' train part extended to every row before val, scalers refitted."""
    bounds = panel.bounds.copy()
    bounds[:, 0, 0] = 0
    mean, std = np.empty_like(panel.mean), np.empty_like(panel.std)
    for i in range(panel.n_series):
        rows = panel.series(i)[: bounds[i, 0, 1]].astype(np.float64)
        mean[i], std[i] = rows.mean(axis=0), rows.std(axis=0)
    return replace(panel, bounds=bounds, mean=mean, std=std)


def m4_panel(cfg: Config, n_series: int | None = None) -> Panel:
    """The embedded training series (the first ``n_series``) as a panel split by ``cfg``."""
    ids = cfg.data.id_column or "unique_id"
    frame = load_m4_hourly(ids, "timestamp", cfg.data.target)
    if n_series is not None:
        keep = frame[ids].unique()[:n_series]
        frame = frame[frame[ids].isin(keep)]
    panel = build_panel(
        frame,
        id_column=ids,
        timestamp_column="timestamp",
        columns=[cfg.data.target],
        split=cfg.split,
        window=cfg.window,
        freq="h",
        anchor=cfg.split.anchor_for(frame[ids].nunique()),
    )
    return whole_history_train(panel)


def _windows(panel: Panel, part: str) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Series index (K,), scaled inputs (K, L, C) and targets (K, H) of every window of ``part``."""
    idx = panel.window_index(part)
    x, y = panel.gather(idx[:, 0], idx[:, 1])
    return idx[:, 0], torch.from_numpy(x), torch.from_numpy(y)


def fit(panel: Panel, cfg: Config) -> tuple[LSTMForecaster, dict[str, Any]]:
    """The pipeline's own global training (``tsforecast.training.train.fit``, CPU, no checkpoints)."""
    model, info = fit_global(cfg, panel, torch.device("cpu"), progress=False)
    return model, {
        "best_epoch": info["best_epoch"],
        "epochs_run": info["epochs"],
        "best_val_loss": info["best_val_loss"],
        "trainer": TRAINER,
    }


def score(model: LSTMForecaster, panel: Panel, part: str) -> dict[str, Any]:
    """sMAPE, MASE, OWA (and the baselines') of the model's forecast of ``part`` of every series."""
    s, x, _ = _windows(panel, part)
    if np.unique(s).size != s.size or s.size != panel.n_series:
        raise ValueError(f"expected one {part} window per series, got {s.size} for {panel.n_series} series")
    model.eval()
    with torch.no_grad():
        pred = model(x).numpy()  # (S, H) scaled
    idx = panel.window_index(part)
    _, actual = panel.gather(idx[:, 0], idx[:, 1], scaled=False)
    forecast = panel.inverse_target(s, pred.astype(np.float64))
    aggregate, _ = m4.panel_scores(actual, forecast, panel.histories(before=part), M, ids=list(panel.ids))
    keep = ("smape", "mase", "owa", "n_series", "baselines")
    return {k: aggregate[k] for k in keep}


def run_trial(overrides: dict[str, Any], seed: int, n_series: int | None = None) -> dict[str, Any]:
    """Train once with ``overrides`` and ``seed``; score the target (test) and early-stop (val) parts."""
    cfg = trial_config({**overrides, "train.seed": seed})
    panel = m4_panel(cfg, n_series)
    start = time.perf_counter()
    model, info = fit(panel, cfg)
    seconds = time.perf_counter() - start
    target, early = score(model, panel, "test"), score(model, panel, "val")
    return {
        "overrides": overrides,
        "seed": seed,
        "smape": target["smape"],
        "mase": target["mase"],
        "owa": target["owa"],
        "early_stop_part": {k: early[k] for k in ("smape", "mase", "owa")},
        "baselines": target["baselines"],
        "n_series": target["n_series"],
        "train_seconds": round(seconds, 1),
        "n_params": model.n_params(),
        **info,
    }


def _key(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={overrides[k]}" for k in sorted(overrides))


def _same_run(trial: dict[str, Any], overrides: dict[str, Any], seed: int) -> bool:
    """Whether a logged ``trial`` is this config and seed on the pipeline's trainer (a rerun replaces it)."""
    return (
        _key(trial["overrides"]) == _key(overrides)
        and trial["seed"] == seed
        and trial["trainer"] in SAME_TRAINER
    )


def summarise(trials: list[dict[str, Any]], overrides: dict[str, Any]) -> dict[str, Any]:
    """Median and range over the seeds of one config, the baselines, and its ``dvc exp run`` line."""
    runs = [t for t in trials if _key(t["overrides"]) == _key(overrides) and t["trainer"] in SAME_TRAINER]
    if not runs:
        raise ValueError(f"no trials of {_key(overrides)!r} in the log; run them first")
    out: dict[str, Any] = {"overrides": overrides, "seeds": sorted(t["seed"] for t in runs)}
    for k in ("owa", "smape", "mase"):
        vals = [t[k] for t in runs]
        out[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    out["baselines"] = runs[0]["baselines"]
    params = {k: v for k, v in PROTOCOL.items() if k != "train.device"} | overrides
    cfg = trial_config(overrides).flat()  # pin what matters too, so a new params.yaml default can't move it
    params |= {k: cfg[k] for k in PINNED if k not in params}
    out["dvc_exp_run"] = "dvc exp run " + " ".join(f"-S {k}={_yaml(v)}" for k, v in params.items())
    return out


def _yaml(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def format_table(log: dict[str, Any]) -> str:
    lines = [f"{'OWA':>6}{'sMAPE':>8}{'MASE':>7}{'es-OWA':>8}{'ep':>4}{'sec':>6} seed  config"]
    for t in sorted(log.get("trials", []), key=lambda t: t["owa"]):
        lines.append(
            f"{t['owa']:>6.3f}{t['smape']:>8.2f}{t['mase']:>7.3f}{t['early_stop_part']['owa']:>8.3f}"
            f"{t['best_epoch']:>4}{t['train_seconds']:>6.0f}{t['seed']:>5}  {_key(t['overrides'])}"
            + ("" if t["trainer"] in SAME_TRAINER else "  [interim loop]")
        )
    if log.get("trials"):
        b = log["trials"][0]["baselines"]
        lines.append(
            f"same windows: seasonal naive OWA {b['seasonal_naive']['owa']:.3f}, Naive2 1.000; "
            f"published TEST-set OWA: seasonal naive {PUBLISHED_TEST_OWA['seasonal_naive']}, "
            f"winner {PUBLISHED_TEST_OWA['winner_es_rnn']}"
        )
    if "final" in log:
        f = log["final"]["owa"]
        lines.append(f"final: OWA median {f['median']:.3f} [{f['min']:.3f}..{f['max']:.3f}]")
        lines.append(log["final"]["dvc_exp_run"])
    return "\n".join(lines)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values read as YAML (as ``dvc exp run -S`` does)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected key=value, e.g. --set window.input_size=168")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each run")
    parser.add_argument(
        "--final", action="store_true", help="record this config (its logged seeds) as the chosen one"
    )
    parser.add_argument("--table", action="store_true", help="only print the log")
    parser.add_argument("--quick", action="store_true", help="5 series, a tiny model: a smoke test")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the JSON log")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: trials compare configs, and the machine is shared
    fast_cpu_math()
    try:
        return _search(args)
    finally:
        torch.set_num_threads(threads)


def _search(args: argparse.Namespace) -> int:
    """Run the trials ``args`` ask for, update the log, print the table."""
    log: dict[str, Any] = read_json(args.output) if args.output.is_file() else {}
    log.setdefault("protocol", __doc__.split("\n\n")[2].replace("\n", " "))
    log.setdefault("trials", [])
    overrides = {**(QUICK if args.quick else {}), **parse_set(args.set)}
    for seed in [] if args.table else args.seeds:
        trial = run_trial(overrides, seed, n_series=5 if args.quick else None)
        if args.output.is_file():  # re-read: the log may have changed during the trial
            log["trials"] = read_json(args.output).get("trials", [])
        log["trials"] = [t for t in log["trials"] if not _same_run(t, overrides, seed)] + [trial]
        write_json(args.output, log)  # after every run: an interrupted search keeps its trials
        print(f"seed {seed}: OWA {trial['owa']:.3f} sMAPE {trial['smape']:.2f} MASE {trial['mase']:.3f}")
    if args.final:  # with --table: from the trials already logged
        log["final"] = summarise(log["trials"], overrides)
        write_json(args.output, log)
    print(format_table(log))
    print(f"log: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
