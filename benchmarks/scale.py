"""Panel scale benchmark: the pipeline's stages at 100, 1,000 and 10,000 series of ~1,000 points.

    python benchmarks/scale.py                   # table + benchmarks/scale.json
    python benchmarks/scale.py --sizes 100       # smoke run (about a minute)
    python benchmarks/scale.py --markdown        # the README table from scale.json
    python benchmarks/scale.py --set train.batch_size=256 --output /tmp/x.json

What is measured is what users run: per size, a scratch repo folder gets a ``params.yaml``
(the repo's, with the panel keys below) and the data file, and every stage runs through the
stage table, ``tsforecast.stages.run_stage(name, cfg, paths)``, in a fresh interpreter per
stage and run (``scale_worker.py``): ingest, validate, window, train (ONE epoch of
``train.windows_per_epoch`` = 16,384 sampled windows, so its cost does not grow with the
panel, plus the val pass, the interval calibration and saving), evaluate and forecast
(``--stages`` adds backtest). Each stage runs ``--repeats`` times (default 3) on the outputs
of the stage before it (each run rewrites the same files).

Series: ``scale_data.synthetic_panel(n, length=1200, min_length=800)``: hourly, per-series
level exp(N(log 100, 1)) (about 10 .. 1,000), linear trend of -30 % .. +30 % over the series,
daily and weekly multiplicative cycles of random amplitude and phase, AR(1) log-noise, and
varying lengths (each series keeps its last 800 .. 1,200 steps, uniform: 1,000 on average;
they start at different times and end together). Written as Parquet; ``data.freq: auto``.

Panel keys: ``data.id_column: unique_id``, ``split`` 400/48/48 rows (test = the last 48 rows
of each series, val = the 48 before, train = every row before that), ``window`` L=168 (one
week), H=48, ``evaluate.seasonal_period: 24``, ``train.epochs: 1``,
``train.windows_per_epoch: 16384``, ``train.resume: false``, ``train.device: cpu``,
``orchestration.dask_address: null`` (the stages decide between in-process and a local
cluster of 2 worker processes); everything else as in params.yaml.

Per cell (stage x size): ``wall_s`` is the median of the runs' ``run_stage`` time, with the
spread ``wall_s_min``..``wall_s_max`` and every run kept (never the best run); ``process_s``
adds the interpreter start and imports (what ``tsforecast STAGE`` costs). ``peak_mb`` is the
peak resident memory of the stage's process tree (the stage process plus any Dask workers it
starts), sampled every 50 ms from outside, median over the runs with its spread;
``rss_self_mb`` is the stage process's exact peak (``VmHWM``), ``rss_imports_mb`` its
peak after the imports alone; ``child_processes`` (per run) the most descendant processes
seen at once that lived through two samples or more (a helper of a few milliseconds, such as the
``ldconfig`` that ``ctypes.util.find_library`` starts, is not one), and
``runs_with_child_processes`` how many runs had any (a stage whose
``map_series`` started a local Dask cluster; the table's "runs" column says so). A first
run over ``--max-cell-s`` is not repeated (the cell says so). ``growth_per_10x`` has, per stage and pair of sizes, the ratio of the times
(``time_x``), of the times per series (``per_series_x``: 1.0 = flat, the target) and of the
peaks; ``targets`` checks the largest size against 10 minutes, 4 GB and flat per-series cost.
The machine is shared: the load average of every run is kept, so read times as upper bounds.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # `python benchmarks/scale.py` from the repo root
    sys.path.insert(0, str(REPO))

from benchmarks.harness import clean_env, environment, log  # noqa: E402
from benchmarks.scale_data import synthetic_panel  # noqa: E402
from tsforecast.io import read_json, write_json  # noqa: E402

DEFAULT_OUTPUT = HERE / "scale.json"
WORKER = HERE / "scale_worker.py"
SIZES = (100, 1_000, 10_000)
LENGTH, MIN_LENGTH = 1_200, 800  # each series keeps its last 800..1,200 steps: 1,000 on average
STAGES = ("ingest", "validate", "window", "train", "evaluate", "forecast")
REPEATS = 3
SAMPLE_S = 0.05
TARGET_WALL_S, TARGET_PEAK_MB, FLAT_X = 600.0, 4096.0, 1.2
DATA_FILE = "panel.parquet"
PANEL_PARAMS: dict[str, dict[str, Any]] = {
    "data": {"timestamp_column": "timestamp", "target": "value", "id_column": "unique_id"}
    | {"covariates": [], "freq": "auto"},
    "split": {"train": 400, "val": 48, "test": 48, "lookback": True},
    "window": {"input_size": 168, "horizon": 48, "stride": 1},
    "train": {"epochs": 1, "windows_per_epoch": 16_384, "resume": False, "device": "cpu"},
    "evaluate": {"seasonal_period": 24},
    "orchestration": {"dask_address": None, "train_pool": "local"},
}


class StageFailed(RuntimeError):
    """A stage's process exited non-zero, wrote no result or ran past its time limit."""


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """``section.key=value`` overrides (values parsed as YAML) as ``{section: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise SystemExit(f"--set {item!r} is not section.key=value, e.g. train.batch_size=256")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def make_repo(root: Path, n: int, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A scratch repo folder: the data file and params.yaml (the repo's, with the panel keys)."""
    frame = synthetic_panel(n, LENGTH, seed=0, min_length=MIN_LENGTH)
    (root / "data").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(root / "data" / DATA_FILE, index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, keys in (*PANEL_PARAMS.items(), *overrides.items()):
        params.setdefault(section, {}).update(keys)
    params["data"]["path"] = str(root / "data" / DATA_FILE)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {"n_rows": len(frame), "data_mb": (root / "data" / DATA_FILE).stat().st_size / 2**20}


def _tree_rss(proc: psutil.Process) -> tuple[int, set[int]]:
    """Resident bytes of ``proc`` and its descendants now, and the descendants' pids (a local Dask
    cluster's scheduler-side processes and workers); processes that just ended count 0."""
    total = 0
    try:
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, set()
    for p in [proc, *children]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, {c.pid for c in children}


def run_once(stage: str, root: Path, args: argparse.Namespace, profile: Path | None = None) -> dict[str, Any]:
    """One fresh-process run of ``stage`` on ``root``: the worker's numbers plus the tree's RSS peak."""
    scratch, timeout_s, threads = args.scratch, args.timeout_s, args.threads
    tag = f"{root.name}-{stage}-{len(list(scratch.glob(f'{root.name}-{stage}-*.log')))}"
    out, log_path = scratch / f"{tag}.json", scratch / f"{tag}.log"
    cmd = [sys.executable, str(WORKER), stage, str(root), str(out)]
    cmd += ["--profile", str(profile)] if profile else []
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("MLFLOW_TRACKING_URI", None)  # the scratch folder's own store, never a user's server
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = psutil.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=root)
        peak = children = 0
        before: set[int] = set()  # the descendants of the previous sample
        while proc.poll() is None:
            rss, now = _tree_rss(proc)
            peak, children = max(peak, rss), max(children, len(now & before))  # alive in two samples
            before = now
            if time.perf_counter() - started > timeout_s:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()
                raise StageFailed(f"{stage} ran past --timeout-s={timeout_s:.0f} and was stopped")
            time.sleep(SAMPLE_S)
    process_s = time.perf_counter() - started
    if proc.returncode != 0 or not out.is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-12:])
        raise StageFailed(f"{stage} exited {proc.returncode}; last lines of {log_path}:\n{tail}")
    run = read_json(out)
    run.update(process_s=process_s, load_1m=load, child_processes=children)
    # the sampler can miss a spike shorter than SAMPLE_S; the stage process's exact peak bounds it
    run["peak_mb"] = max(peak / 2**20, run["rss_self_mb"])
    return run


def _spread(values: list[float], key: str) -> dict[str, float]:
    return {key: statistics.median(values), f"{key}_min": min(values), f"{key}_max": max(values)}


def measure_cell(stage: str, root: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """``args.repeats`` fresh-process runs of ``stage`` (fewer past ``--max-cell-s``): medians and spreads."""
    runs: list[dict[str, Any]] = []
    note = None
    for r in range(args.repeats):
        runs.append(run_once(stage, root, args))
        log(
            f"  {n:>6} series {stage:<9} run {r + 1}: {runs[-1]['stage_s']:8.2f} s, {runs[-1]['peak_mb']:6.0f} MB"
        )
        if r == 0 and args.repeats > 1 and runs[0]["stage_s"] > args.max_cell_s:
            note = f"1 run, not {args.repeats}: the first took {runs[0]['stage_s']:.0f} s > --max-cell-s={args.max_cell_s:g}"
            break
    cell: dict[str, Any] = {"n_runs": len(runs)}
    cell |= _spread([r["stage_s"] for r in runs], "wall_s")
    cell |= _spread([r["peak_mb"] for r in runs], "peak_mb")
    cell["process_s"] = statistics.median(r["process_s"] for r in runs)
    cell["per_series_ms"] = 1e3 * cell["wall_s"] / n
    cell["runs_with_child_processes"] = sum(
        r["child_processes"] > 0 for r in runs
    )  # e.g. a local Dask cluster
    for key in ("rss_self_mb", "rss_imports_mb", "import_s"):
        cell[key] = statistics.median(r[key] for r in runs)
    cell["runs"] = runs
    if note:
        cell["note"] = note
    if args.profile:
        prof = args.profile / f"{n}-{stage}.prof"
        run_once(stage, root, args, profile=prof)
        cell["profile"] = str(prof)
    return cell


def run_size(n: int, stages: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every stage at ``n`` series in a scratch repo folder; a failed stage skips the ones after it."""
    root = Path(tempfile.mkdtemp(prefix=f"pscale-{n}-", dir=args.workdir))
    try:
        row: dict[str, Any] = {"n_series": n, **make_repo(root, n, args.overrides)}
        log(f"{n} series: {row['n_rows']:,} rows, {row['data_mb']:.0f} MB of Parquet in {root}")
        failed = None
        for stage in stages:
            if failed:
                row[stage] = {"skipped": f"{failed} failed before it"}
                continue
            try:
                row[stage] = measure_cell(stage, root, n, args)
            except StageFailed as exc:
                log(f"  {stage} FAILED: {exc}")
                row[stage], failed = {"error": str(exc)}, stage
        return row
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _ok(cell: Any) -> bool:
    return isinstance(cell, dict) and "wall_s" in cell


def growth(rows: list[dict[str, Any]], stages: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per pair of consecutive sizes and stage: ratios of time, time per series and peak memory."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in zip(rows, rows[1:], strict=False):
        scale = b["n_series"] / a["n_series"]
        pair = out.setdefault(f"{a['n_series']}->{b['n_series']}", {})
        for s in stages:
            if _ok(a.get(s)) and _ok(b.get(s)):
                x = b[s]["wall_s"] / max(a[s]["wall_s"], 1e-9)
                pair[s] = {
                    "time_x": x,
                    "per_series_x": x / scale,
                    "peak_mb_x": b[s]["peak_mb"] / a[s]["peak_mb"],
                }
    return out


def targets(rows: list[dict[str, Any]], stages: list[str], grow: dict[str, Any]) -> dict[str, Any]:
    """The largest size against 10 minutes and 4 GB; per-series cost from 1,000 to 10,000 series."""
    big = rows[-1]
    done = [s for s in stages if _ok(big.get(s))]
    wall = sum(big[s]["wall_s"] for s in done)
    peak = max((big[s]["peak_mb"] for s in done), default=math.nan)
    flat = grow.get("1000->10000", {})
    return {
        "n_series": big["n_series"],
        "stages_measured": done,
        "all_stages_ran": len(done) == len(stages),
        "total_wall_s": wall,
        "total_process_s": sum(big[s]["process_s"] for s in done),
        "max_peak_mb": peak,
        "limits": {"total_wall_s": TARGET_WALL_S, "max_peak_mb": TARGET_PEAK_MB, "per_series_x": FLAT_X},
        "within_time": len(done) == len(stages) and wall <= TARGET_WALL_S,  # a failed stage is no pass
        "within_memory": len(done) == len(stages) and peak <= TARGET_PEAK_MB,
        "not_flat_1000_to_10000": sorted(s for s, g in flat.items() if g["per_series_x"] > FLAT_X),
    }


def compare_threads(
    row: dict[str, Any], other: dict[str, Any], threads: int, stages: list[str]
) -> dict[str, Any]:
    """The largest size run again with ``threads`` intra-op threads: its row and, per stage, the
    default run's time over this one's (above 1: the default is slower)."""
    ok = [s for s in stages if _ok(row.get(s)) and _ok(other.get(s))]
    return {
        "threads": threads,
        "n_series": other["n_series"],
        "row": other,
        "default_over_threads_time_x": {s: row[s]["wall_s"] / max(other[s]["wall_s"], 1e-9) for s in ok},
    }


def _cell_text(cell: Any) -> tuple[str, str, str, str]:
    if not _ok(cell):
        what = "failed" if "error" in (cell or {}) else "skipped"
        return what, "", "", ""
    wall = f"{cell['wall_s']:.2f} ({cell['wall_s_min']:.2f}-{cell['wall_s_max']:.2f})"
    peak = f"{cell['peak_mb']:.0f} ({cell['peak_mb_min']:.0f}-{cell['peak_mb_max']:.0f})"
    runs = str(cell["n_runs"])
    if k := cell.get("runs_with_child_processes"):
        runs += f" ({k} with Dask workers)"
    return wall, f"{cell['per_series_ms']:.3f}", peak, runs


def table(result: dict[str, Any], markdown: bool = False) -> str:
    """Stage x size: median seconds (min-max), ms per series, peak MB (min-max), runs; then growth."""
    rows, stages = result["sizes"], result["config"]["stages"]
    head = (
        "stage",
        "series",
        "run_stage s, median (min-max)",
        "ms/series",
        "peak MB, median (min-max)",
        "runs",
    )
    body = [(s, f"{r['n_series']:,}", *_cell_text(r.get(s))) for s in stages for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
    else:
        widths = [max(len(x[i]) for x in (head, *body)) for i in range(len(head))]
        lines = ["  ".join(x[i].rjust(widths[i]) for i in range(len(head))) for x in (head, *body)]
    for pair, per in result["growth_per_10x"].items():
        parts = [f"{s} x{g['time_x']:.2f} ({g['per_series_x']:.2f}/series)" for s, g in per.items()]
        lines.append(("\n" if markdown else "") + f"growth {pair}: " + ", ".join(parts))
    cmp = result.get("threads_comparison")
    if cmp and markdown:
        n = cmp["n_series"]
        big = next(r for r in rows if r["n_series"] == n)
        lines += [
            f"\nAt {n:,} series, the default threads against OMP_NUM_THREADS={cmp['threads']}:\n",
            f"| stage | default s | {cmp['threads']} thread(s) s | default / pinned | peak MB, default | "
            f"peak MB, {cmp['threads']} thread(s) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s} | {_cell_text(big[s])[0]} | {_cell_text(cmp['row'][s])[0]} | x{x:.2f} | "
            f"{_cell_text(big[s])[2]} | {_cell_text(cmp['row'][s])[2]} |"
            for s, x in cmp["default_over_threads_time_x"].items()
        ]
    elif cmp:
        parts = [
            f"{s} {_cell_text(cmp['row'][s])[0]} s, {_cell_text(cmp['row'][s])[2]} MB (default x{x:.2f})"
            for s, x in cmp["default_over_threads_time_x"].items()
        ]
        lines.append(
            ("\n" if markdown else "")
            + f"OMP_NUM_THREADS={cmp['threads']} at {cmp['n_series']:,} series: "
            + ", ".join(parts)
        )
    t = result["targets"]
    lines.append(
        ("\n" if markdown else "")
        + f"{t['n_series']:,} series: {t['total_wall_s']:.0f} s in run_stage over {len(t['stages_measured'])} stages "
        f"({t['total_process_s']:.0f} s with process starts), peak {t['max_peak_mb']:.0f} MB; "
        f"within 10 min: {t['within_time']}, within 4 GB: {t['within_memory']}, "
        f"per-series cost above x{FLAT_X} from 1,000 to 10,000: {t['not_flat_1000_to_10000'] or 'none'}"
    )
    return "\n".join(lines)


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), help="in pipeline order; ingest first")
    ap.add_argument(
        "--repeats", type=int, default=REPEATS, help="fresh-process runs per cell; the median is quoted"
    )
    ap.add_argument(
        "--max-cell-s", type=float, default=240.0, help="a first run longer than this is not repeated"
    )
    ap.add_argument("--timeout-s", type=float, default=1200.0, help="one run longer than this fails")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for the stages (default: torch's own choice)",
    )
    ap.add_argument(
        "--also-threads",
        type=int,
        default=None,
        metavar="N",
        help="then run the largest size again with OMP_NUM_THREADS=N (threads_comparison in the JSON)",
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--workdir", type=Path, default=None, help="where scratch repo folders go (default: tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders and the stage logs")
    ap.add_argument(
        "--profile", type=Path, default=None, help="also one cProfile'd run per cell, stats in this folder"
    )
    ap.add_argument(
        "--markdown", action="store_true", help="print the table of --output as Markdown and exit"
    )
    args = ap.parse_args(argv)
    args.overrides = parse_set(args.overrides)
    if args.stages[0] != "ingest":
        ap.error("--stages must start with ingest: the later stages read its output")
    args.repeats = max(1, args.repeats)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if args.markdown:
        print(table(read_json(args.output), markdown=True))
        return 0
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    env, t0 = environment(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pscale-logs-", dir=args.workdir) as logs:
        args.scratch = (
            Path(logs) if not args.keep else Path(tempfile.mkdtemp(prefix="pscale-keep-", dir=args.workdir))
        )
        rows = [run_size(n, args.stages, args) for n in sorted(args.sizes)]
        if args.also_threads:
            log(f"the largest size again with OMP_NUM_THREADS={args.also_threads}")
            alt = argparse.Namespace(**(vars(args) | {"threads": args.also_threads}))
            other = run_size(rows[-1]["n_series"], args.stages, alt)
    grow = growth(rows, args.stages)
    result = {
        "sizes": rows,
        "growth_per_10x": grow,
        "targets": targets(rows, args.stages, grow),
        "config": {
            "stages": args.stages,
            "repeats": args.repeats,
            "max_cell_s": args.max_cell_s,
            "series": {"length": LENGTH, "min_length": MIN_LENGTH, "freq": "h", "seed": 0},
            "params": PANEL_PARAMS,
            "overrides": args.overrides,
            "rss_sample_s": SAMPLE_S,
            "threads": args.threads,
        },
        "environment": env | {"loadavg_end": list(os.getloadavg()), "total_s": time.perf_counter() - t0},
    }
    if args.also_threads:
        result["threads_comparison"] = compare_threads(rows[-1], other, args.also_threads, args.stages)
    print(table(result))
    if args.keep:
        print(f"scratch logs kept in {args.scratch}", file=sys.stderr)
    write_json(args.output, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
