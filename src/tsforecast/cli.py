"""``tsforecast``: one subcommand per pipeline stage, plus predict and explain.

Each stage subcommand reads params.yaml once, calls the stage's ``run_<stage>``
function and prints a one-line summary. DVC (dvc.yaml) and Prefect call these same
subcommands. A user error prints one line on stderr and exits 1; a transient failure
(a registry or network that a retry may reach) exits 75; ``--debug`` shows the traceback.
The stage subcommands come from the stage table in :mod:`tsforecast.stages`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from tsforecast import stages
from tsforecast.errors import TransientError, TsForecastError

log = logging.getLogger("tsforecast")

EX_USAGE_ERROR = 1  # a user error: one line on stderr
EX_TEMPFAIL = 75  # sysexits.h: a transient failure (registry or network unreachable); retry later
EX_INTERRUPTED = 130


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("great_expectations", "mlflow", "alembic", "urllib3", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _summary(name: str, result: Any) -> str:
    fields = asdict(result) if is_dataclass(result) else dict(result or {})
    shown = ", ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, dict | list))
    return f"{name}: {shown}" if shown else f"{name}: done"


def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    from tsforecast.config import load_config
    from tsforecast.paths import Paths

    paths = Paths.from_root(args.root)
    params = args.params or paths.params
    cfg = load_config(params)
    return cfg, paths


def _stage(name: str) -> Callable[[argparse.Namespace], Any]:
    def run(args: argparse.Namespace) -> Any:
        cfg, paths = _context(args)
        return stages.get(name).run(cfg, paths)  # the sections its signature names, plus paths

    return run


def _cmd_params(args: argparse.Namespace) -> None:
    import yaml

    cfg, _ = _context(args)
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), end="")


def _cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from tsforecast.forecasting.predict import run_predict
    from tsforecast.paths import Paths

    return run_predict(
        args.model,
        args.input,
        args.output,
        tracking_uri=args.tracking_uri,
        levels=args.levels,
        paths=Paths.from_root(args.root),
    )


def _cmd_promote(args: argparse.Namespace) -> Any:
    from tsforecast.registry.promote import run_promote

    cfg, paths = _context(args)
    return run_promote(
        args.version,
        cfg.register,
        paths,
        model_name=args.model_name,
        alias=args.alias,
        force=args.force,
        reason=args.reason,
    )


def _cmd_init(args: argparse.Namespace) -> None:
    from pathlib import Path

    from tsforecast import presets
    from tsforecast.paths import Paths

    if args.list or not args.preset:
        print("\n".join(presets.describe(n) for n in presets.names()))
        return
    target = Path(args.params) if args.params else Paths.from_root(args.root).params
    r = presets.write_preset(args.preset, target, force=args.force)
    what = "wrote" if r.changed else "already holds"
    print(
        f"init: {r.params} {what} the {r.preset} preset (data.path {r.data_path}, register.model_name "
        f"{r.model_name})\nnext: dvc repro (or make run)\nback: {r.undo}"
    )


def _cmd_summary(args: argparse.Namespace) -> None:
    from tsforecast.paths import Paths
    from tsforecast.summary import build_summary

    print(build_summary(Paths.from_root(args.root)), end="")


def _cmd_explain_gradients(args: argparse.Namespace) -> dict[str, Any]:
    from tsforecast.paths import Paths
    from tsforecast.teaching.explain import run_explain_gradients

    paths = Paths.from_root(args.root)
    return run_explain_gradients(paths, seq_len=args.seq_len, hidden_size=args.hidden_size, seed=args.seed)


def _cmd_monitor(args: argparse.Namespace) -> Any:
    from tsforecast.monitoring.monitor import record_gate, run_monitor

    cfg, paths = _context(args)
    if args.record_gate:
        return record_gate(cfg.register, cfg.monitor, paths, track=not args.no_mlflow)
    result = run_monitor(
        cfg.data, cfg.evaluate, cfg.forecast, cfg.monitor, cfg.register, paths,
        data_dir=args.data, track=not args.no_mlflow,
    )  # fmt: skip
    for reason in result.reasons:
        print(f"{'retrain' if result.retrain else 'keep'}: {reason}")
    return result


def _cmd_replay(args: argparse.Namespace) -> Any:
    from tsforecast.monitoring.replay import run_replay
    from tsforecast.monitoring.replay_data import parse_overrides

    cfg, paths = _context(args)
    return run_replay(
        cfg, paths, args.rounds, epochs=args.epochs, overrides=parse_overrides(args.set),
        shift=args.shift, shift_round=args.shift_round, scratch=args.scratch,
    )  # fmt: skip


def _cmd_archive(args: argparse.Namespace) -> Any:
    import pandas as pd

    from tsforecast.monitoring.archive import archive_files, prune
    from tsforecast.monitoring.mlflow_log import pull_archive
    from tsforecast.monitoring.types import archive_dir

    cfg, paths = _context(args)
    folder = archive_dir(paths)
    if args.action == "pull":
        since = pd.Timestamp(args.since) if args.since else None
        got = pull_archive(paths, cfg.monitor, folder, since)
        return {"pulled": len(got), "files": len(archive_files(folder)), "folder": str(folder)}
    if args.action == "prune":
        if not args.before:
            from tsforecast.errors import ConfigError

            raise ConfigError(
                "archive prune needs --before DATE (files whose origin is before it are deleted)"
            )
        gone = prune(folder, pd.Timestamp(args.before), dry_run=args.dry_run)
        for p in gone:
            print(f"{'would remove' if args.dry_run else 'removed'} {p.name}")
        return {
            "removed" if not args.dry_run else "would_remove": len(gone),
            "left": len(archive_files(folder)),
        }
    files = archive_files(folder)
    for p in files:
        print(p.name)
    return {"files": len(files), "folder": str(folder)}


HELP = {spec.name: spec.help for spec in stages.STAGES}

INPUT_HELP = (
    "CSV/Parquet history: the model's timestamp column, target and covariates (as in params.yaml "
    "when it was trained), at least window.input_size rows at data.freq without gaps; the last "
    "input_size rows are used; for a panel's model, a long frame with its id column too (each "
    "series forecast on its own). Default: data/validated/ (the current validated data). Make one "
    "with e.g. `python -c \"import pandas as pd; pd.read_parquet('data/validated/data.parquet')"
    ".tail(336).to_csv('history.csv', index=False)\"`"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsforecast",
        description="An LSTM forecasting pipeline: one subcommand per stage (dvc.yaml calls them "
        "in order; `dvc repro` runs them all), plus predict and explain.",
        epilog="Example: tsforecast validate --params params.yaml",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", help="params file (default: params.yaml in the repo root)")
    common.add_argument("--root", help="repo root (default: nearest folder with params.yaml)")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for spec in stages.STAGES:
        p = sub.add_parser(spec.name, parents=[common], help=spec.help, description=spec.help)
        p.set_defaults(func=_stage(spec.name), title=spec.name)

    p = sub.add_parser("params", parents=[common], help="print the resolved params (defaults filled in)")
    p.set_defaults(func=_cmd_params, title="params")

    p = sub.add_parser(
        "predict",
        parents=[common],
        help="forecast the next horizon steps from a history file (default: the validated data)",
        description="Load a model (a models:/ URI, runs:/ URI or a local MLflow model folder) "
        "and forecast the horizon steps that follow the history in --input (default: "
        "data/validated/, the current validated data).",
    )
    p.add_argument("--model", required=True, help="e.g. models:/tsforecast-lstm@champion")
    p.add_argument("--input", help=INPUT_HELP.replace("%", "%%"))
    p.add_argument(
        "--output", required=True, help="CSV (or .parquet) to write: timestamp, forecast, lo_<l>, hi_<l>"
    )
    p.add_argument(
        "--levels",
        type=float,
        nargs="*",
        help="interval levels in percent (default: the model's, 80); give none for no intervals",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlflow.db)")
    p.set_defaults(func=_cmd_predict, title="predict")

    p = sub.add_parser(
        "promote",
        parents=[common],
        help="move the champion alias to a registered version by hand",
        description="Move register.alias (champion) of register.model_name to VERSION. Refuses a "
        "version of another task identity (data source, target, covariates, frequency, horizon, "
        "input size) unless --force; records who and why as the version's tsforecast.promotion tag.",
    )
    p.add_argument("version", type=int, metavar="VERSION", help="the registered version to promote")
    p.add_argument("--model-name", help="registered model (default: register.model_name)")
    p.add_argument("--alias", help="alias to move (default: register.alias)")
    p.add_argument("--force", action="store_true", help="promote even across task identities")
    p.add_argument("--reason", default="deliberate promotion", help="why, recorded on the version")
    p.set_defaults(func=_cmd_promote, title="promote")

    p = sub.add_parser(
        "init",
        parents=[common],
        help="write a shipped params.yaml preset (taylor: one series; m4-hourly: the M4 panel)",
        description="Write the params.yaml of a shipped preset into the repo root: `taylor` (the "
        "default, one half-hourly series) or `m4-hourly` (the 414 M4 hourly series as one panel, "
        "registered under its own register.model_name). Undo with the other preset: "
        "`tsforecast init --preset taylor`. A params.yaml with edits of your own is kept unless --force.",
    )
    p.add_argument("--preset", metavar="NAME", help="the preset to write (see --list)")
    p.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--force", action="store_true", help="overwrite a params.yaml that is no preset")
    p.set_defaults(func=_cmd_init, title="init")

    p = sub.add_parser(
        "summary",
        parents=[common],
        help="the last run: LSTM vs baselines, the gate's decision, where the plots and UIs are",
        description="Print what the last pipeline run produced (metrics/evaluate.json, "
        "reports/registered.json), where the plots, Data Docs and MLflow UI are, and what to run next.",
    )
    p.set_defaults(func=_cmd_summary, title="summary")

    _monitoring_parsers(sub, common)

    p = sub.add_parser("explain", help="illustrations of how the model works")
    esub = p.add_subparsers(dest="what", required=True, metavar="WHAT")
    g = esub.add_parser(
        "gradients",
        parents=[common],
        help="plot the gradient norm reaching each input step: plain RNN vs LSTM",
        description="Backpropagate from the last output of an untrained plain RNN and an LSTM of "
        "the same size, and plot how much gradient reaches each input step "
        "(plots/gradients.png). The RNN's vanishes; the LSTM's cell state carries it.",
    )
    g.add_argument("--seq-len", type=int, default=200, help="input steps (default 200)")
    g.add_argument("--hidden-size", type=int, default=64, help="hidden units (default 64)")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_cmd_explain_gradients, title="explain gradients")
    return parser


def _monitoring_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``monitor``, ``replay`` and ``archive``: forecasts checked against what happened (docs/monitoring.md)."""
    p = sub.add_parser(
        "monitor",
        parents=[common],
        help="score every archived forecast against the newest data, measure drift, decide whether to retrain",
        description="Score forecasts/archive/ against the newest validated data (realized MAE, mse_scaled, "
        "MASE, coverage), compare with the champion's backtest band, measure drift against the training "
        "rows, decide whether to retrain (monitor.* in params.yaml). Writes metrics/monitor.json, "
        "metrics/monitor_by_series.parquet, plots/monitor.png, a record in forecasts/decisions/ and the "
        "realized accuracy to MLflow. Not a DVC stage: it decides whether the training stages run.",
    )
    p.add_argument("--data", help="validated data folder to score against (default: data/validated)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument(
        "--record-gate",
        action="store_true",
        help="after a decided retrain: record the gate's verdict (reports/registered.json) beside the decision",
    )
    p.set_defaults(func=_cmd_monitor, title="monitor")

    p = sub.add_parser(
        "replay",
        parents=[common],
        help="replay the nightly logic on your own history: hold back N x horizon rows, feed them back",
        description="Hold back the last N x window.horizon rows of every series, train the first champion on "
        "the rest, then feed horizon rows a round and run the nightly logic each round (ingest, validate, "
        "monitor, decision, retrain when decided, gate, forecast) in a scratch root (.replay/<time>/); "
        "writes reports/replay.json and plots/replay.png. Your own outputs, registry and archive are "
        "untouched. On the default data and 2 cores a retrain round takes ~1.5 min (30 epochs); --epochs "
        "shortens it.",
    )
    p.add_argument("--rounds", type=int, required=True, metavar="N", help="rounds of window.horizon rows")
    p.add_argument(
        "--epochs", type=int, help="train.epochs for the replay's trainings (default: params.yaml's)"
    )
    p.add_argument(
        "-S", "--set", action="append", metavar="KEY=VALUE",
        help="override a param for the replay only, e.g. -S monitor.patience=1 (repeatable)",
    )  # fmt: skip
    p.add_argument(
        "--shift", type=float, default=0.0,
        help="multiply the target of the fed rows by 1 + SHIFT from --shift-round on (e.g. 0.1: +10%% load)",
    )  # fmt: skip
    p.add_argument("--shift-round", type=int, default=1, help="first round with the shift (default 1)")
    p.add_argument("--scratch", type=Path, help="the scratch root (default: .replay/<time>/ in the checkout)")
    p.set_defaults(func=_cmd_replay, title="replay")

    p = sub.add_parser(
        "archive",
        parents=[common],
        help="the archive of delivered forecasts: list, pull from the MLflow store, prune old files",
        description="forecasts/archive/ keeps every delivered forecast. `list` names its files; `pull` "
        "downloads the files another machine delivered (tsforecast monitor uploads them to the MLflow "
        "artifact store, experiment monitor.experiment, run forecast-archive); `prune --before DATE` "
        "deletes local files whose origin is before DATE (the only deletion; the store keeps its copy).",
    )
    p.add_argument("action", choices=["list", "pull", "prune"])
    p.add_argument("--before", help="prune: origins before this date (e.g. 2024-01-01)")
    p.add_argument("--since", help="pull: only origins from this date on")
    p.add_argument("--dry-run", action="store_true", help="prune: only name the files")
    p.set_defaults(func=_cmd_archive, title="archive")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tsforecast")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tsforecast`` console script."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("TSFORECAST_DEBUG") == "1"
    _setup_logging(debug)
    try:
        result = args.func(args)
    except TsForecastError as e:
        if debug:
            raise
        lines = str(e).splitlines() or [type(e).__name__]
        for line in lines:
            print(f"error: {line}", file=sys.stderr)
        return EX_TEMPFAIL if isinstance(e, TransientError) else EX_USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EX_INTERRUPTED
    if result is not None:
        print(_summary(args.title, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
