"""The benchmark's report: the terminal table, the results JSON, and the README's table.

    python benchmarks/report.py --markdown                 # the README table from results.json
    python benchmarks/report.py --input other.json         # the terminal table of a results file

The README quotes only what this prints from the committed ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.accuracy import scores_line  # noqa: E402
from benchmarks.speed import TARGET_SPEEDUP  # noqa: E402

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results.json"
Rows = list[tuple[str, str]]


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


# --------------------------------------------------------------------------- one-line pieces


def shape_label(sp: dict[str, Any]) -> str:
    """``L=96, H=96`` for a shape's summary."""
    return f"L={sp['setup']['input_size']}, H={sp['setup']['horizon']}"


def speed_line(sp: dict[str, Any]) -> str:
    """Medians, the ratio of medians, and the per-pair ratios' median and spread."""
    p = sp["speedup_pairs"]
    iqr = f", IQR {p['q1']:.2f}-{p['q3']:.2f}" if p["n"] >= 4 else ""
    return (
        f"{sp['ours_samples_per_second']:,.0f} vs {sp['plain_samples_per_second']:,.0f} samples/s "
        f"(medians over {p['n']} runs each): **{sp['speedup']:.2f}x**; per seed pair median "
        f"{p['median']:.2f}x, range {p['min']:.2f}-{p['max']:.2f}{iqr} ({p['n']} pairs)"
    )


def val_mse_line(sp: dict[str, Any]) -> str:
    """The seed-paired val MSE comparison in words: means, difference, interval, detectable size."""
    v = sp["val_mse"]
    head = (
        f"ours {v['ours_mean']:.4f} vs plain {v['ref_mean']:.4f} (mean over {v['n_pairs']} seeds); "
        f"ours - plain, paired by seed: {v['diff_mean']:+.4f}"
    )
    if v["diff_se"] is None:
        return f"{head}; {v['verdict']}"
    lo, hi = v["ci95"]
    return (
        f"{head} (se {v['diff_se']:.4f}, 95 % CI {lo:+.4f} to {hi:+.4f}); smallest difference this "
        f"comparison could detect: {v['min_detectable_diff']:.4f} = {v['min_detectable_rel']:.0%} of "
        f"plain's mean; {v['verdict']}"
    )


def ablation_line(ab: dict[str, Any]) -> str:
    """Ours without bf16 and sharding against the full loop at the same seeds."""
    return (
        f"{ab['samples_per_second']:,.0f} samples/s, val MSE {ab['val_mse_mean']:.4f} vs "
        f"{ab['val_mse_mean_full_loop_same_seeds']:.4f} for the full loop at the same "
        f"{len(ab['seeds'])} seeds (full loop on this CPU: {ab['full_loop_cpu_shards']} shards, "
        f"bf16 {'on' if ab['full_loop_cpu_bf16'] else 'off: no native bf16'})"
    )


def inference_line(inf: dict[str, Any]) -> str:
    """Median latency of one forecast and of a batch of 1,000."""
    return (
        f"one forecast {inf['predict_one_ms']:.2f} ms (p90 {inf['predict_one_p90_ms']:.2f}), "
        f"1,000 forecasts {inf['predict_1000_ms']:.0f} ms (p90 {inf['predict_1000_p90_ms']:.0f}) "
        f"at {inf['threads']} threads (H={inf['horizon']}, L={inf['input_size']} model)"
    )


def windowing_line(w: dict[str, Any]) -> str:
    """Peak bytes of windowing the 10M-point series: the panel's steps, or (a results file from
    before the panel) the one-series views."""
    gb = w["materialised_bytes_would_be"] / 1e9
    if "steps" not in w:
        return (
            f"{w['peak_bytes']:,} bytes of new allocations for {w['n_windows']:,} windows "
            f"(views: {_fmt(w['windows_share_memory'])}; copies would take {gb:.1f} GB)"
        )
    return (
        f"{w['peak_bytes']:,} bytes at peak ({w['peak_over_series']:.2f}x the series) for "
        f"{w['n_windows']:,} windows: {w['windows_bytes']:,} for the ranges of every part, "
        f"{w['val_index_bytes']:,} for the index of the {w['n_windows_by_part']['val']:,} val windows, "
        f"{w['batch64_peak_bytes']:,} to gather a batch of 64; copies of every window would take {gb:.1f} GB"
    )


def horizons_line(by_h: dict[str, Any]) -> str:
    """LSTM / repeat last / seasonal naive test MSE (scaled) at each horizon."""
    parts = []
    for h, a in sorted(by_h.items(), key=lambda kv: int(kv[0])):
        if "skipped" in a:
            parts.append(f"H={h}: skipped ({a['skipped']})")
        else:
            parts.append(
                f"H={h}: {a['lstm_mse_scaled']:.4f} / {a['repeat_last_mse_scaled']:.4f} / "
                f"{a['seasonal_naive_mse_scaled']:.4f}"
            )
    return "; ".join(parts)


def hourly_line(hp: dict[str, Any] | None) -> str:
    """The hourly smoke check: ran or not, and its scores on the synthetic series."""
    if not hp:
        return "not run (`--hourly-proxy`)"
    if "skipped" in hp:
        return f"skipped: {hp['skipped']}"
    return (
        f"ran end to end: {scores_line(hp)} on the synthetic series "
        f"({hp['epochs_run']} epochs, best {hp['best_epoch']}); not a result on real data"
    )


def cpu_settings_line(speed: dict[str, Any]) -> str:
    """Whether every training run, of both loops, had the same flush-denormal and allocator state."""
    runs = [r for sp in speed["shapes"].values() for rs in sp["runs"].values() for r in rs]
    states = {(r["flush_denormal"], r["allocator_tuned"]) for r in runs}
    if len(states) != 1:
        return f"NOT the same in every run: (flush_denormal, allocator_tuned) took {sorted(states)}"
    flush, alloc = states.pop()
    return (
        f"given to both loops in all {len(runs)} runs (flush-denormal {'on' if flush else 'unsupported'}, "
        f"allocator thresholds {'set' if alloc else 'not set'}), so no ratio above includes them"
    )


def load_line(res: dict[str, Any]) -> str:
    """How loaded the machine was during the run."""
    e, load = res["environment"], res.get("load") or {}
    if not load:
        return f"{e['loadavg_start'][0]:.2f} at the start, {e.get('loadavg_end', [0])[0]:.2f} at the end"
    return (
        f"1-minute load average {load['loadavg_1min_min']:.1f}-{load['loadavg_1min_max']:.1f} "
        f"(median {load['loadavg_1min_median']:.1f}) on {e['cpus_usable']} usable CPUs "
        f"({len(load['samples'])} samples)"
    )


# --------------------------------------------------------------------------- the terminal table


def _speed_rows(res: dict[str, Any]) -> Rows:
    rows: Rows = []
    for sp in res["speed"]["shapes"].values():
        lbl = shape_label(sp)
        rows.append((f"{lbl}: ours / plain samples/s, speedup", speed_line(sp).replace("**", "")))
        rows.append(
            (
                f"{lbl}: by total time / by CPU time",
                f"{sp['speedup_total_time']:.2f}x / {sp['speedup_cpu_time']:.2f}x",
            )
        )
        rows.append((f"{lbl}: val MSE after {sp['setup']['epochs']} epochs", val_mse_line(sp)))
        if sp.get("ours_with_plain_recipe"):
            r = sp["ours_with_plain_recipe"]
            rows.append(
                (
                    f"{lbl}: ours with the plain recipe",
                    f"{r['samples_per_second']:.1f} samples/s, val MSE {r['val_mse_final']:.4f} (seed {r['seed']}, once)",
                )
            )
        if sp.get("ablation"):
            rows.append((f"{lbl}: ablation, ours fp32 one shard", ablation_line(sp["ablation"])))
        rows.append(
            (
                f"{lbl}: steps per run, timed (+ warm-up)",
                f"{sp['timed_steps_per_run']} (+{sp['warmup_steps_per_run']})",
            )
        )
    rows.append(("CPU settings", res["speed"]["cpu_settings"]))
    rss = res["memory"]
    rows.append(("peak RSS MB: ours / plain", f"{rss['ours_mb']:.0f} / {rss['plain_mb']:.0f}"))
    return rows


def report_rows(res: dict[str, Any]) -> list[tuple[str, Rows]]:
    """Sections of (label, value) rows for the terminal table."""
    acc: Rows = []
    for h, a in sorted(res["accuracy"]["by_horizon"].items(), key=lambda kv: int(kv[0])):
        if "skipped" in a:
            acc.append((f"H={h}", f"skipped: {a['skipped']}"))
        else:
            lbl = f"H={h} (L={a['input_size']}, {a['epochs_run']}/{a['epochs_configured']} ep)"
            acc.append((lbl, scores_line(a)))
    acc.append(("hourly smoke check (synthetic, not a result)", hourly_line(res.get("hourly_proxy"))))
    inf = res.get("inference")
    e = res["environment"]
    env: Rows = [
        (
            "torch / threads",
            f"{e['torch_version']} / {e['torch_threads']} (interop {e['torch_interop_threads']})",
        ),
        ("cpu", f"{e['cpu_model']}, {e['cpus_usable']} usable of {e['cpu_count']}"),
        ("machine load during the run", load_line(res)),
        ("device / cuda", f"{e['device']} / {res['cuda'] or res.get('cuda_note')}"),
        (
            "date, commit, elapsed",
            f"{e['date']}, {e['git_commit']}, {res['elapsed_s']:.0f}s"
            + ("  (QUICK: tiny sizes, the numbers mean nothing)" if res["quick"] else ""),
        ),
    ]
    return [
        (f"Training speed (target >= {TARGET_SPEEDUP}x; same model, data and steps)", _speed_rows(res)),
        (f"Accuracy: test MSE on the train-fit scale ({res['accuracy']['note']})", acc),
        (
            "Inference latency (CPU)",
            [("predict", inference_line(inf) if inf else f"skipped: {res.get('inference_note', '')}")],
        ),
        (
            "Windowing memory (10M points, L=336, H=48)",
            [("window every part, index val, gather 64", windowing_line(res["windowing"]))],
        ),
        ("Environment", env),
    ]


def print_table(res: dict[str, Any]) -> None:
    """The report as rich tables, or plain text where rich is missing."""
    sections = report_rows(res)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        for title, rows in sections:
            print(f"\n{title}")
            width = max(len(k) for k, _ in rows)
            for k, v in rows:
                print(f"  {k:<{width}}  {v}")
        return
    console = Console(width=160)
    for title, rows in sections:
        table = Table(title=title, title_justify="left", show_header=False)
        table.add_column(style="bold", max_width=48)
        table.add_column()
        for k, v in rows:
            table.add_row(k, v)
        console.print(table)


def write_results(res: dict[str, Any], path: Path) -> None:
    """Atomically write ``res`` as indented JSON."""
    from tsforecast.io import write_json

    write_json(path, res)


# --------------------------------------------------------------------------- the README table


def markdown_rows(res: dict[str, Any]) -> Rows:
    """The README's benchmark table: (measure, result) rows, every number from ``res``."""
    rows: Rows = []
    for sp in res["speed"]["shapes"].values():
        shipped = (sp["setup"]["input_size"], sp["setup"]["horizon"]) == (336, 48)
        lbl = shape_label(sp) + (" (params.yaml's window)" if shipped else "")
        steps = f"{sp['timed_steps_per_run']} timed steps per run"
        rows.append((f"training speed, ours vs a plain loop, {lbl}, {steps}", speed_line(sp)))
    for sp in res["speed"]["shapes"].values():
        rows.append((f"val MSE after those steps, {shape_label(sp)}", val_mse_line(sp)))
    main_sp = res["speed"]["shapes"][res["speed"]["contract_shape"]]
    if main_sp.get("ours_with_plain_recipe"):
        r = main_sp["ours_with_plain_recipe"]
        rows.append(
            (
                f"ours with the plain loop's recipe (Adam 1e-3, constant LR, no clipping), {shape_label(main_sp)}",
                f"{r['samples_per_second']:,.0f} samples/s, val MSE {r['val_mse_final']:.4f} "
                f"(one run, seed {r['seed']}; plain at that seed: {main_sp['val_mse_by_seed'][0]['plain']:.4f})",
            )
        )
    ab = main_sp.get("ablation")
    if ab:
        rows.append(("ablation: ours with bf16 off and one shard", ablation_line(ab)))
    rows.append(("CPU settings (flush-denormal, allocator)", cpu_settings_line(res["speed"])))
    rss = res["memory"]
    rows.append(
        ("peak RSS of a training process", f"ours {rss['ours_mb']:.0f} MB, plain {rss['plain_mb']:.0f} MB")
    )
    inf = res.get("inference")
    rows.append(("inference latency, CPU", inference_line(inf) if inf else "skipped"))
    rows.append(("windowing memory, 10 million points, L=336, H=48", windowing_line(res["windowing"])))
    rows.append(
        (
            f"test MSE scaled, default data, L={next(iter(res['accuracy']['by_horizon'].values())).get('input_size', 336)}: "
            "LSTM / repeat last / seasonal naive",
            horizons_line(res["accuracy"]["by_horizon"]),
        )
    )
    rows.append(
        ("hourly smoke check (`--hourly-proxy`, synthetic series)", hourly_line(res.get("hourly_proxy")))
    )
    rows.append(
        (
            "CUDA",
            "measured: " + json.dumps(res["cuda"])
            if res.get("cuda")
            else f"not measured ({res.get('cuda_note')})",
        )
    )
    e = res["environment"]
    rows.append(("machine load during the run", load_line(res)))
    rows.append(("run", f"{e['date']}, commit {e['git_commit']}, {res['elapsed_s']:.0f} s, {e['cpu_model']}"))
    return rows


def markdown_table(res: dict[str, Any]) -> str:
    """The README table as Markdown text."""
    lines = ["| measure | result |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in markdown_rows(res)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``report.py [--input PATH] [--markdown]``: print a results file's table."""
    p = argparse.ArgumentParser(prog="python benchmarks/report.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--input", type=Path, default=DEFAULT_RESULTS, help="results JSON (default: benchmarks/results.json)"
    )
    p.add_argument("--markdown", action="store_true", help="print the README's Markdown table instead")
    a = p.parse_args(argv)
    if not a.input.is_file():
        print(f"error: {a.input} does not exist; run `python benchmarks/run.py` first", file=sys.stderr)
        return 1
    res = json.loads(a.input.read_text())
    if a.markdown:
        print(markdown_table(res))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
