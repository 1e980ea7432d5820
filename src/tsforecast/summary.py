"""``tsforecast summary``: what the last pipeline run produced, and where to look next.

``make run`` ends with it. It reads only the files the stages leave behind
(``metrics/evaluate.json``, ``metrics/backtest.json``, ``reports/registered.json``,
``forecasts/forecast.parquet``, ``plots/``, ``reports/data_docs/``);
a missing or unreadable file is named with the stage that writes it, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsforecast.paths import Paths

__all__ = ["build_summary", "mlflow_run_url"]

EVALUATE_JSON = "metrics/evaluate.json"
REGISTERED_JSON = "reports/registered.json"
BACKTEST_JSON = "metrics/backtest.json"
FORECAST_PARQUET = "forecasts/forecast.parquet"
DATA_DOCS = "reports/data_docs/index.html"
PLOTS = (
    "plots/future.png",
    "plots/forecast.png",
    "plots/error_by_step.png",
    "plots/worst_series.png",
    "plots/backtest.png",
    "plots/loss.png",
)
COLUMNS = ("mse_scaled", "mae_scaled", "mase")
BASELINES = ("repeat_last", "seasonal_naive")
LOCAL_UI = "http://127.0.0.1:5000"  # where `make mlflow-ui` serves


def _read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(content, None) or (None, why it could not be read)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "not found"
    except (OSError, ValueError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fmt(value: Any) -> str:
    x = _num(value)
    return "-" if x is None else f"{x:.4g}"


def metrics_section(evaluate: Mapping[str, Any] | None, why: str | None) -> list[str]:
    """The LSTM against both baselines on the test windows, and who wins on mse_scaled."""
    if evaluate is None:
        return [f"Test metrics: {EVALUATE_JSON} {why}: the evaluate stage has not run - run `dvc repro`."]
    baselines = evaluate.get("baselines") if isinstance(evaluate.get("baselines"), Mapping) else {}
    shape = ", ".join(
        f"{label}={evaluate[key]}"
        for key, label in (("horizon", "H"), ("input_size", "L"))
        if key in evaluate
    )
    n = evaluate.get("n_windows")
    head = f"Test metrics over {n} test windows" if n is not None else "Test metrics"
    lines = [f"{head}{f' ({shape})' if shape else ''}; *_scaled on the train-fit scale, lower is better:"]
    lines.append(f"  {'forecaster':<16}" + "".join(f"{c:>12}" for c in COLUMNS))
    rows = [("LSTM", evaluate)] + [(b, baselines.get(b)) for b in BASELINES]
    for name, values in rows:
        if not isinstance(values, Mapping):
            lines.append(f"  {name:<16}" + f"{'(missing)':>12}")
            continue
        lines.append(f"  {name:<16}" + "".join(f"{_fmt(values.get(c)):>12}" for c in COLUMNS))
    ours = _num(evaluate.get("mse_scaled"))
    beaten, not_beaten = [], []
    for b in BASELINES:
        theirs = (
            _num((baselines.get(b) or {}).get("mse_scaled"))
            if isinstance(baselines.get(b), Mapping)
            else None
        )
        if ours is not None and theirs is not None:
            (beaten if ours < theirs else not_beaten).append(f"{b} ({_fmt(theirs)})")
    if ours is not None and not not_beaten and beaten:
        lines.append(f"  The LSTM beats both baselines on mse_scaled ({_fmt(ours)}).")
    elif not_beaten:
        lines.append(f"  The LSTM ({_fmt(ours)}) does not beat {', '.join(not_beaten)} on mse_scaled.")
    lines += panel_lines(evaluate, baselines)
    intervals = evaluate.get("intervals") if isinstance(evaluate.get("intervals"), Mapping) else {}
    for level, band in intervals.items():
        if isinstance(band, Mapping) and _num(band.get("coverage")) is not None:
            lines.append(
                f"  {level} % prediction intervals cover {100 * _num(band['coverage']):.1f} % of the test "
                f"values (nominal {level} %), mean width {_fmt(band.get('width_scaled'))} (scaled)"
            )
    return lines


PANEL_COLUMNS = ("smape", "mase", "owa")
PANEL_ROWS = (
    ("LSTM", None),
    ("naive2", "naive2"),
    ("seasonal_naive", "seasonal_naive"),
    ("repeat_last", "repeat_last"),
)


def panel_lines(evaluate: Mapping[str, Any], baselines: Mapping[str, Any]) -> list[str]:
    """A panel's M4 measures (means over series; OWA against Naive2) and its worst series; [] for one series."""
    if _num(evaluate.get("owa")) is None and "n_series" not in evaluate:
        return []
    lines = [
        f"  Over {evaluate.get('n_series')} series, M4 measures (means over series, OWA against Naive2 = 1):",
        f"  {'forecaster':<16}" + "".join(f"{c:>12}" for c in PANEL_COLUMNS),
    ]
    for label, key in PANEL_ROWS:
        values = evaluate if key is None else baselines.get(key)
        if isinstance(values, Mapping):
            lines.append(f"  {label:<16}" + "".join(f"{_fmt(values.get(c)):>12}" for c in PANEL_COLUMNS))
    ours = _num(evaluate.get("owa"))
    sn = _num((baselines.get("seasonal_naive") or {}).get("owa")) if isinstance(baselines, Mapping) else None
    if ours is not None and sn is not None:
        verb = "beats" if ours < sn else "does NOT beat"
        lines.append(f"  The LSTM's OWA {_fmt(ours)} {verb} seasonal naive's {_fmt(sn)} (and Naive2's 1).")
    worst = evaluate.get("worst_series")
    if isinstance(worst, list) and worst:
        lines.append(
            f"  Highest MASE: {', '.join(map(str, worst))} (plots/worst_series.png; per series: metrics/by_series.parquet)"
        )
    return lines


def backtest_section(backtest: Mapping[str, Any] | None, why: str | None) -> list[str]:
    """The rolling-origin backtest: pooled mse_scaled against seasonal naive, origins won."""
    if backtest is None:
        return [f"Backtest: {BACKTEST_JSON} {why}: run `dvc repro backtest`."]
    ours = _num(backtest.get("mse_scaled"))
    sn = _num(((backtest.get("baselines") or {}).get("seasonal_naive") or {}).get("mse_scaled"))
    by_cutoff = [c for c in backtest.get("by_cutoff") or [] if isinstance(c, Mapping)]
    won = sum(
        1
        for c in by_cutoff
        if (a := _num(c.get("mse_scaled"))) is not None
        and (b := _num(((c.get("baselines") or {}).get("seasonal_naive") or {}).get("mse_scaled")))
        is not None
        and a < b
    )
    lines = [
        f"Backtest over {backtest.get('n_cutoffs')} origins (no refit): mse_scaled LSTM {_fmt(ours)}, "
        f"seasonal_naive {_fmt(sn)}; the LSTM wins from {won} of {len(by_cutoff)} origins"
    ]
    if "n_series" in backtest:  # a panel: origins per series, and the M4 view
        sn_owa = ((backtest.get("baselines") or {}).get("seasonal_naive") or {}).get("owa")
        lines.append(
            f"  per series of {backtest['n_series']} ({backtest.get('n_cutoffs')} of "
            f"{backtest.get('n_cutoffs_requested')} requested origins fit each test part): OWA LSTM "
            f"{_fmt(backtest.get('owa'))}, seasonal_naive {_fmt(sn_owa)}"
        )
    return lines


def forecast_section(root: Path) -> list[str]:
    """The published forecast: where it is and what it spans."""
    path = root / FORECAST_PARQUET
    if not path.is_file():
        return [f"Forecast: {FORECAST_PARQUET} not found: run `dvc repro forecast`."]
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        return [f"Forecast: {FORECAST_PARQUET} unreadable ({type(e).__name__}): run `dvc repro forecast`."]
    if frame.empty or "timestamp" not in frame:
        return [f"Forecast: {FORECAST_PARQUET} holds no rows: run `dvc repro forecast`."]
    bands = [c[3:] for c in frame.columns if str(c).startswith("lo_")]
    return [
        f"Forecast: {FORECAST_PARQUET}: {len(frame)} steps {frame['timestamp'].iloc[0]} .. "
        f"{frame['timestamp'].iloc[-1]}" + (f", intervals {', '.join(bands)} %" if bands else "")
    ]


def mlflow_run_url(registered: Mapping[str, Any]) -> str | None:
    """The MLflow UI page of the registered run: the tracking server's, or `make mlflow-ui`'s."""
    run_id, exp_id = registered.get("run_id"), registered.get("experiment_id")
    if not run_id or exp_id is None:
        return None
    uri = str(registered.get("tracking_uri") or "")
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#/experiments/{exp_id}/runs/{run_id}"


def gate_section(
    registered: Mapping[str, Any] | None, why: str | None, evaluate: Mapping[str, Any] | None
) -> list[str]:
    """The registered version, the alias it holds and the gate's reason."""
    if registered is None:
        return [
            f"Registry: {REGISTERED_JSON} {why}: the register stage has not run - run `dvc repro register`."
        ]
    name, version = registered.get("model_name", "?"), registered.get("version", "?")
    aliases = registered.get("aliases") or []
    held = ", ".join(f"@{a}" for a in aliases) if aliases else "no alias"
    lines = [f"Registry (MLflow): {name} v{version} -> {held}"]
    if registered.get("reason"):
        lines.append(f"  why: {registered['reason']}")
    champion = registered.get("champion_version")
    if champion is not None and champion != version:
        lines.append(f"  the champion is v{champion}: models:/{name}@champion still serves it")
    ours = _num((evaluate or {}).get("mse_scaled"))
    theirs = _num(registered.get("mse_scaled"))
    if ours is not None and theirs is not None and abs(ours - theirs) > 1e-9 * max(1.0, abs(ours)):
        lines.append(
            f"  (this record is from an earlier run: it scored {_fmt(theirs)}, the metrics now say "
            f"{_fmt(ours)} - run `dvc repro register`)"
        )
    return lines


def where_section(paths: Paths, registered: Mapping[str, Any] | None) -> list[str]:
    """Where the plots, the Data Docs and the MLflow UI are."""
    root = paths.root
    plots = [p for p in PLOTS if (root / p).is_file()]
    lines = ["Where to look:"]
    if plots:
        lines.append(f"  plots      {', '.join(plots)} (any image viewer; on Linux: xdg-open {plots[0]})")
        lines.append("             `dvc plots show` draws them with the JSON plots into dvc_plots/index.html")
    else:
        lines.append(
            "  plots      no PNGs under plots/ (they are in the DVC cache, not git): run `dvc repro`"
        )
    docs = root / DATA_DOCS
    if docs.is_file():
        lines.append(f"  Data Docs  {DATA_DOCS} (the validation suite, in a browser)")
    else:
        lines.append(f"  Data Docs  {DATA_DOCS} not found: the validate stage has not run")
    uri = str((registered or {}).get("tracking_uri") or "")
    url = mlflow_run_url(registered or {})
    if uri.startswith(("http://", "https://")):
        lines.append(f"  MLflow UI  {url or uri}")
    else:
        db = paths.mlflow_db
        lines.append(
            f"  MLflow UI  make mlflow-ui  (or: .venv/bin/mlflow ui --backend-store-uri sqlite:///{db} "
            "--host 127.0.0.1 --port 5000)"
        )
        lines.append(f"             then {url or LOCAL_UI}")
    return lines


NEXT = [
    ("dvc metrics diff", "this run's metrics against HEAD's (committed in git)"),
    ("dvc plots diff", "the plots against HEAD's, into dvc_plots/index.html"),
    ("dvc exp run -S model.hidden_size=128", "try a change as an experiment; `dvc exp show` lists them"),
    ("git add dvc.lock metrics plots reports/validation.json", "then `git commit`: keep this run's numbers"),
]


def build_summary(paths: Paths) -> str:
    """The summary text: metrics vs baselines, the gate's decision, where to look, what next."""
    evaluate, why_eval = _read(paths.root / EVALUATE_JSON)
    registered, why_reg = _read(paths.root / REGISTERED_JSON)
    backtest, why_bt = _read(paths.root / BACKTEST_JSON)
    width = max(len(cmd) for cmd, _ in NEXT)
    lines = [
        "== tsforecast: summary ==",
        *metrics_section(evaluate, why_eval),
        *backtest_section(backtest, why_bt),
        "",
        *gate_section(registered, why_reg, evaluate),
        "",
        *forecast_section(paths.root),
        "",
        *where_section(paths, registered),
        "",
        "Next:",
        *(f"  {cmd:<{width}}  {what}" for cmd, what in NEXT),
    ]
    return "\n".join(lines) + "\n"
