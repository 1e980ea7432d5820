"""Lineage of a registered model: its task identity, and the code, data and params behind it.

**Task identity** is what a client of ``models:/<name>@champion`` relies on; two versions
with the same identity answer the same question, so the gate may move the alias between
them. The fields (the exact list; tags ``tsforecast.identity.<field>``):

* ``data_source``: ``data.path`` as written in params.yaml (``builtin:taylor`` or a file
  path). Not the data's hash: new rows of the same source are the same task.
* ``target``: ``data.target``, the forecast column.
* ``covariates``: ``data.covariates``, the extra input columns a request must carry.
* ``freq``: the frequency resolved by the validate stage (``30min``, ``h``, ``MS`` ...),
  not ``auto``: the step between forecast timestamps.
* ``horizon``: ``window.horizon``, the number of steps a forecast returns.
* ``input_size``: ``window.input_size``, the history rows a request must hold.
* ``id_column``: ``data.id_column`` (null: one series; a panel's id column later).

The identity hash (tag ``tsforecast.identity``) is a short sha256 of those fields. Nothing
else (model size, training params, the data's rows) changes it.

The rest is reproducibility: the git commit, DVC's hashes of the data, a fingerprint that
makes reruns idempotent. Pure where possible; :func:`git_state` and the hashing of files
are the edges.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tsforecast.registry.types import (
    BASELINE_TAG,
    DATA_HASH_TAG,
    FINGERPRINT_TAG,
    IDENTITY_FIELD_PREFIX,
    IDENTITY_TAG,
    MSE_TAG,
    REPRODUCE_TAG,
    Candidate,
    IdentityView,
)

log = logging.getLogger(__name__)

IDENTITY_FIELDS = ("data_source", "target", "covariates", "freq", "horizon", "input_size", "id_column")


@dataclass(frozen=True)
class TaskIdentity:
    """What a client relies on (see the module docstring for why each field is here)."""

    data_source: str
    target: str
    covariates: tuple[str, ...]
    freq: str
    horizon: int
    input_size: int
    id_column: str | None = None

    def fields(self) -> dict[str, Any]:
        """The fields as JSON values (``covariates`` a list), in :data:`IDENTITY_FIELDS` order."""
        out = asdict(self)
        out["covariates"] = list(self.covariates)
        return {k: out[k] for k in IDENTITY_FIELDS}

    @property
    def hash(self) -> str:
        """A short stable hash of :meth:`fields`."""
        payload = json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def tags(self) -> dict[str, str]:
        """``tsforecast.identity`` (the hash) and one ``tsforecast.identity.<field>`` tag per field."""
        tags = {IDENTITY_TAG: self.hash}
        tags.update({IDENTITY_FIELD_PREFIX + k: tag_value(v) for k, v in self.fields().items()})
        return tags

    def view(self) -> IdentityView:
        """The form the gate compares: the hash and the tag strings."""
        return identity_from_tags(self.tags())


def tag_value(v: Any) -> str:
    """A tag string: strings as they are, anything else as JSON (``48``, ``["temp"]``, ``null``)."""
    return v if isinstance(v, str) else json.dumps(v)


def task_identity(
    data_path: str,
    target: str,
    covariates: tuple[str, ...] | list[str],
    freq: str,
    horizon: int,
    input_size: int,
    id_column: str | None = None,
) -> TaskIdentity:
    """The identity of a model trained on ``data_path`` (a builtin name or a file path)."""
    source = data_path if data_path.startswith("builtin:") else PurePosixPath(data_path).as_posix()
    return TaskIdentity(
        data_source=source,
        target=target,
        covariates=tuple(covariates),
        freq=freq,
        horizon=int(horizon),
        input_size=int(input_size),
        id_column=id_column,
    )


def identity_from_tags(tags: dict[str, str]) -> IdentityView:
    """The identity a version's tags record (hash None when it records none)."""
    fields = {
        k[len(IDENTITY_FIELD_PREFIX) :]: v for k, v in tags.items() if k.startswith(IDENTITY_FIELD_PREFIX)
    }
    return IdentityView(hash=tags.get(IDENTITY_TAG), fields=fields)


# ---------------------------------------------------------------------------- data and code


def hash_files(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file under ``folder``."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        with open(p, "rb") as fh:
            for chunk in iter(lambda f=fh: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def _dir_stats(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _lock_entries(root: Path) -> dict[str, dict[str, Any]]:
    lock: dict[str, Any] = {}
    lock_path = root / "dvc.lock"
    if lock_path.is_file():
        with contextlib.suppress(yaml.YAMLError, OSError):
            lock = yaml.safe_load(lock_path.read_text()) or {}
    entries: dict[str, dict[str, Any]] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if isinstance(out, dict) and "path" in out:
                entries[out["path"]] = out
    return entries


def dvc_hashes(root: Path, outs: tuple[str, ...] = ("data/raw", "data/validated")) -> dict[str, Any]:
    """DVC's md5 of each out from dvc.lock, or a sha256 of the files where the lock lacks it.

    A lock entry whose file count or size no longer matches the folder is stale (a stage
    ran outside DVC) and is not used.
    """
    entries = _lock_entries(root)
    result: dict[str, Any] = {}
    for rel in outs:
        folder = root / rel
        entry = entries.get(rel)
        if entry and entry.get("md5") and folder.is_dir():
            nfiles, size = _dir_stats(folder)
            if entry.get("nfiles", nfiles) == nfiles and entry.get("size", size) == size:
                result[rel] = {"hash": str(entry["md5"]), "source": "dvc.lock"}
                continue
            log.warning("dvc.lock's entry for %s does not match the folder; hashing the files", rel)
        if folder.is_dir():
            result[rel] = {"hash": "sha256:" + hash_files(folder), "source": "computed"}
        else:
            result[rel] = {"hash": "missing", "source": "missing"}
    return result


def git_state(root: Path) -> tuple[str, str]:
    """(commit, dirty) of the checkout at ``root``; ``unknown`` outside git."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown", "unknown"
    status = git("status", "--porcelain")
    dirty = "unknown" if status is None else str(bool(status.strip())).lower()
    return commit.strip(), dirty


def fingerprint(model_path: Path, metrics_path: Path, data_hash: str) -> str:
    """One registration: the model file (weights + the config that trained it), its metrics, the data."""
    h = hashlib.sha256()
    h.update(hashlib.sha256(model_path.read_bytes()).digest())
    h.update(hashlib.sha256(metrics_path.read_bytes()).digest())
    h.update(data_hash.encode())
    return h.hexdigest()[:24]


# ---------------------------------------------------------------------------- tags and text


def flat_metrics(evaluate: dict[str, Any], train: dict[str, Any]) -> dict[str, float]:
    """``test_mse_scaled``, ``baseline_repeat_last_mse_scaled``, ``train_best_val_loss``, ..."""

    def number(v: Any) -> float | None:
        if isinstance(v, bool):
            return float(v)
        return float(v) if isinstance(v, int | float) else None

    out: dict[str, float] = {}
    for key, value in evaluate.items():
        if key == "baselines":
            for name, scores in value.items():
                for k, v in scores.items():
                    if (n := number(v)) is not None:
                        out[f"baseline_{name}_{k}"] = n
        elif key == "beats":
            for name, v in value.items():
                out[f"test_beats_{name}"] = float(bool(v))
        elif (n := number(value)) is not None:
            out[f"test_{key}"] = n
    for key, value in train.items():
        if (n := number(value)) is not None:
            out[key if key.startswith("train_") else f"train_{key}"] = n
    return out


def flat_params(sections: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``{"window.horizon": "48", ...}``: params as MLflow stores them (strings, JSON for non-strings)."""
    return {f"{s}.{k}": tag_value(v) for s, values in sections.items() for k, v in values.items()}


def params_hash(sections: dict[str, dict[str, Any]]) -> str:
    """A short stable hash of the params sections."""
    payload = json.dumps(sections, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def describe(cand: Candidate, identity: TaskIdentity, commit: str, dirty: str) -> str:
    """The run's and the version's description: what the model is, how it scored, how to reproduce it."""
    m, a = cand.metrics, cand.model.args
    sn = m.get("baselines", {}).get("seasonal_naive", {}).get("mse_scaled")
    lines = [
        f"{a.cell.upper()} forecaster ({a.hidden_size} hidden x {a.num_layers} layers), "
        f"{a.input_size} steps in, {a.horizon} out, every {identity.freq}.",
        "",
        f"Task identity {identity.hash}: {identity.target} from {identity.data_source}.",
        "",
        f"Test mse_scaled {cand.mse_scaled:.5g} over {m.get('n_windows')} windows "
        f"(repeat_last {cand.baseline_mse_scaled:.5g}"
        + (f", seasonal_naive {sn:.5g}" if sn is not None else "")
        + f"); test data {cand.data_hash}.",
        *_panel_lines(m),
        "",
        f"Reproduce: `git checkout {commit} && dvc checkout` (then `dvc repro` re-runs nothing).",
    ]
    if dirty == "true":
        lines.append("Note: the working tree had uncommitted changes when this was registered.")
    return "\n".join(lines)


def _panel_lines(m: dict[str, Any]) -> list[str]:
    """A panel's M4 line for the description (none for one series)."""
    if "owa" not in m or int(m.get("n_series", 1)) < 2:
        return []
    sn = m.get("baselines", {}).get("seasonal_naive", {}).get("owa", float("nan"))
    return [
        "",
        f"One global model over {m['n_series']} series: OWA {m['owa']:.4g} against Naive2 "
        f"(seasonal naive {sn:.4g}), sMAPE {m.get('smape', float('nan')):.4g}, "
        f"MASE {m.get('mase', float('nan')):.4g}; per-series scores in metrics/by_series.parquet.",
    ]


def model_description(target: str, model_name: str, alias: str, challenger_alias: str) -> str:
    """The registered model's description, set once when it is created."""
    return (
        f"Forecasts of `{target}` by tsforecast's LSTM pipeline (`dvc repro`). Every evaluated model "
        f"is a version; the `{alias}` alias moves only between versions of the same task identity "
        "(tag `tsforecast.identity`), to a version whose test mse_scaled beats the repeat_last "
        f"baseline and the current champion on the same test windows; the others get "
        f"`{challenger_alias}` (or no alias: another task). Move it by hand with "
        f"`tsforecast promote VERSION`. Load: `mlflow.pyfunc.load_model('models:/{model_name}@{alias}')`."
    )


def lineage_tags(
    root: Path, cand: Candidate, identity: TaskIdentity, params: dict[str, dict[str, Any]]
) -> dict[str, str]:
    """The run's tags: git commit, data hashes, params hash, fingerprint, identity, description."""
    from tsforecast.io import read_json

    commit, dirty = git_state(root)
    hashes = dvc_hashes(root)
    raw_meta_path = root / "data" / "raw" / "meta.json"
    raw_meta = read_json(raw_meta_path) if raw_meta_path.is_file() else {}
    sources = sorted({h["source"] for h in hashes.values()})
    tags = {
        "git.commit": commit,
        "git.dirty": dirty,
        "params.hash": params_hash(params),
        "data.raw.hash": hashes["data/raw"]["hash"],
        "data.validated.hash": hashes["data/validated"]["hash"],
        # dvc.lock: DVC's md5 (`dvc checkout` restores exactly it); computed: sha256 of the files
        "data.hash_source": sources[0] if len(sources) == 1 else ",".join(sources),
        "data.source": str(raw_meta.get("source", "unknown")),
        "data.source_sha256": str(raw_meta.get("source_sha256") or "none"),
        FINGERPRINT_TAG: cand.fingerprint,
        DATA_HASH_TAG: cand.data_hash,
        REPRODUCE_TAG: f"git checkout {commit} && dvc checkout",
        "mlflow.note.content": describe(cand, identity, commit, dirty),
        **identity.tags(),
    }
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit
    return tags


def version_tags(cand: Candidate, tags: dict[str, str]) -> dict[str, str]:
    """The model version's tags: lineage, identity, and the test metrics the gate reads."""
    keep = (
        "git.commit",
        "git.dirty",
        "params.hash",
        "data.raw.hash",
        "data.validated.hash",
        "data.hash_source",
        "data.source",
        REPRODUCE_TAG,
    )
    out = {k: tags[k] for k in keep if k in tags}
    out.update({k: v for k, v in tags.items() if k == IDENTITY_TAG or k.startswith(IDENTITY_FIELD_PREFIX)})
    out.update(
        {
            FINGERPRINT_TAG: cand.fingerprint,
            DATA_HASH_TAG: cand.data_hash,
            MSE_TAG: repr(cand.mse_scaled),
            BASELINE_TAG: repr(cand.baseline_mse_scaled),
        }
    )
    for key in ("mae_scaled", "mse", "mae", "rmse", "mase", "smape", "n_windows", "owa", "n_series"):
        if key in cand.metrics:
            out[f"tsforecast.{key}"] = repr(cand.metrics[key])
    return out


__all__ = [
    "IDENTITY_FIELDS",
    "TaskIdentity",
    "describe",
    "dvc_hashes",
    "fingerprint",
    "flat_metrics",
    "flat_params",
    "git_state",
    "hash_files",
    "identity_from_tags",
    "lineage_tags",
    "model_description",
    "params_hash",
    "tag_value",
    "task_identity",
    "version_tags",
]
