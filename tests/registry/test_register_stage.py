"""The register stage against a temp sqlite store: the run, the version, the champion gate, identity.

Where the data path matters (reading and cross-checking the stage outputs, re-scoring a champion,
the identity, what the run logs) a test runs on one series and on a panel of 3 (``series_repo``);
the store and gate mechanics, the same for both, on one series (``tiny_repo``).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from tests.helpers.mlflow_fixtures import (  # noqa: F401
    Repo,
    client_for,
    fixture_tiny_repo,
    fixture_tiny_repo_template,
    perturb_model,
    register,
    run_stages,
    sine_frame,
)
from tests.helpers.series_repos import (  # noqa: F401
    ID,
    PANEL_IDS,
    fixture_panel_repo_template,
    fixture_series_repo,
    n_series,
    write_series,
)
from tsforecast.errors import RegistryError
from tsforecast.registry import register as registry
from tsforecast.registry.lineage import params_hash
from tsforecast.registry.tracking import tracking_uri
from tsforecast.registry.types import DATA_HASH_TAG, FINGERPRINT_TAG, MSE_TAG, RESCORED_TAG
from tsforecast.training.card import ModelCard

CONTRACT_KEYS = {
    "model_name",
    "version",
    "aliases",
    "champion",
    "reason",
    "run_id",
    "experiment_id",
    "tracking_uri",
    "model_uri",
    "mse_scaled",
    "champion_version",
    "champion_mse_scaled",
    "identity",
    "identity_fields",
    "champion_identity",
}


def champion_version(repo: Repo) -> int:
    mv = client_for(repo).get_model_version_by_alias(repo.cfg.register.model_name, "champion")
    return int(mv.version)


def save_outputs(repo: Repo) -> dict[str, bytes]:
    files = ("models/model.pt", "metrics/evaluate.json", "metrics/by_series.parquet")
    return {f: (repo.root / f).read_bytes() for f in files}


def restore_outputs(repo: Repo, saved: dict[str, bytes]) -> None:
    for f, data in saved.items():
        (repo.root / f).write_bytes(data)


def test_default_store_is_sqlite_beside_params(tiny_repo: Repo) -> None:
    assert tracking_uri(tiny_repo.paths) == f"sqlite:///{tiny_repo.root / 'mlflow.db'}"


def test_tracking_uri_env_sends_the_registration_to_that_store(
    tiny_repo: Repo, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    result = register(tiny_repo)
    assert result.tracking_uri == elsewhere
    there = MlflowClient(tracking_uri=elsewhere, registry_uri=elsewhere)
    assert [int(v.version) for v in there.search_model_versions("name = 'tiny-lstm'")] == [1]
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert client_for(tiny_repo).search_registered_models() == []


def test_first_model_that_beats_repeat_last_becomes_champion(series_repo: Repo) -> None:
    tiny_repo = series_repo
    result = register(tiny_repo)
    assert result.version == 1
    assert result.champion is True
    assert result.aliases == ["champion"]
    assert result.champion_version == 1
    assert result.mse_scaled < result.baseline_repeat_last_mse_scaled
    assert "no champion yet" in result.reason
    assert f"{result.mse_scaled:.5g}" in result.reason
    assert f"{result.baseline_repeat_last_mse_scaled:.5g}" in result.reason
    assert champion_version(tiny_repo) == 1


def test_registered_json_holds_the_contract_keys(tiny_repo: Repo) -> None:
    result = register(tiny_repo)
    written = json.loads((tiny_repo.paths.reports / "registered.json").read_text())
    assert CONTRACT_KEYS <= set(written)
    assert written["version"] == result.version == 1
    assert written["model_uri"] == "models:/tiny-lstm/1"
    assert written["tracking_uri"] == f"sqlite:///{tiny_repo.root / 'mlflow.db'}"
    assert written["aliases"] == ["champion"] and written["champion"] is True


def test_worse_model_becomes_challenger_and_champion_stays(
    series_repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    tiny_repo = series_repo
    first = register(tiny_repo)
    worse_mse = perturb_model(tiny_repo, noise=0.05)
    assert worse_mse > first.mse_scaled
    with caplog.at_level("INFO", logger="tsforecast"):
        second = register(tiny_repo)
    assert second.version == 2
    assert second.champion is False
    assert second.aliases == ["challenger"]
    assert champion_version(tiny_repo) == 1
    assert second.champion_version == 1
    assert second.champion_mse_scaled == pytest.approx(first.mse_scaled)
    expected = (
        f"challenger: v2: test mse_scaled {worse_mse:.5g} does not beat champion v1's "
        f"{first.mse_scaled:.5g} on the same test windows"
    )
    assert second.reason == expected
    assert expected in caplog.text


def test_better_model_takes_the_champion_alias(tiny_repo: Repo) -> None:
    good = save_outputs(tiny_repo)
    worse_mse = perturb_model(tiny_repo, noise=0.02)
    first = register(tiny_repo)
    assert first.champion and worse_mse < first.baseline_repeat_last_mse_scaled
    restore_outputs(tiny_repo, good)
    second = register(tiny_repo)
    assert second.version == 2 and second.champion is True
    assert second.previous_champion_version == 1
    assert second.previous_champion_mse_scaled == pytest.approx(worse_mse)
    assert f"beats champion v1's {worse_mse:.5g}" in second.reason
    assert champion_version(tiny_repo) == 2
    assert client_for(tiny_repo).get_model_version("tiny-lstm", "1").aliases == []


def test_model_that_does_not_beat_repeat_last_is_never_champion(tiny_repo: Repo) -> None:
    bad_mse = perturb_model(tiny_repo, noise=2.0)
    baseline = json.loads((tiny_repo.paths.metrics / "evaluate.json").read_text())["baselines"]
    assert bad_mse >= baseline["repeat_last"]["mse_scaled"]  # precondition: a truly bad model
    result = register(tiny_repo)
    assert result.champion is False
    assert result.aliases == ["challenger"]
    assert result.champion_version is None
    assert "does not beat the repeat_last baseline's" in result.reason
    assert "never champion" in result.reason


def test_changed_data_rescores_the_champion_on_the_new_test_windows(series_repo: Repo) -> None:
    first = register(series_repo)
    old_model, old_card = _load(series_repo)
    # new data: another noise draw, a higher level and longer series; retrain on it
    write_series(series_repo, n_series(series_repo), n=700, seed=7, level=60.0)
    run_stages(series_repo.root)
    second = register(series_repo)
    assert second.version == 2
    assert "re-scored on the current test windows" in second.reason
    champion_on_new = _mse_in_new_scale(old_model, old_card, series_repo)
    assert second.previous_champion_mse_scaled == pytest.approx(champion_on_new, rel=1e-4)
    assert champion_on_new != pytest.approx(first.mse_scaled, rel=1e-3)
    v1 = client_for(series_repo).get_model_version("tiny-lstm", "1")
    new_hash = client_for(series_repo).get_model_version("tiny-lstm", "2").tags[DATA_HASH_TAG]
    assert v1.tags[DATA_HASH_TAG] != new_hash
    assert float(v1.tags[RESCORED_TAG + new_hash]) == pytest.approx(champion_on_new, rel=1e-4)
    assert second.champion == (second.mse_scaled < champion_on_new)


def _load(repo: Repo) -> tuple:
    """(model, its card) of models/model.pt."""
    from tsforecast.training.model import load_model

    model, extra = load_model(repo.paths.models / "model.pt")
    return model, ModelCard.from_extra(extra)


def _mse_in_new_scale(model: torch.nn.Module, card: ModelCard, repo: Repo) -> float:
    """The old model on the new test windows, computed in data units, independently of the registry:
    each series scaled in with the old model's own scaler, errors measured in the new scale."""
    from tsforecast.dataset.panel import load_panel

    p = load_panel(repo.paths.prepared)
    L, H = p.input_size, p.horizon
    own_mean, own_std = card.series_scalers.arrays()
    own = {str(sid): k for k, sid in enumerate(card.series_scalers.ids)}
    sq = []
    for s, start in p.window_index("test"):
        data = p.series(int(s)).astype("float64")  # (n_s, 1) raw rows
        k = own[str(p.ids[s])]
        x = ((data[start : start + L] - own_mean[k]) / own_std[k]).astype("float32")  # (L, 1)
        with torch.no_grad():
            pred = model(torch.from_numpy(x)[None])[0].double().numpy() * own_std[k, 0] + own_mean[k, 0]
        sq.append(((pred - data[start + L : start + L + H, 0]) / p.std[s, 0]) ** 2)  # (H,) the new scale
    return float(np.mean(sq))


def test_run_holds_params_per_epoch_losses_metrics_and_artifacts(series_repo: Repo) -> None:
    tiny_repo = series_repo
    result = register(tiny_repo)
    client = client_for(tiny_repo)
    run = client.get_run(result.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "tsforecast"
    assert run.data.params["window.input_size"] == "24"
    assert run.data.params["model.hidden_size"] == "8"
    assert run.data.params["data.covariates"] == "[]"
    logged = ("data", "split", "window", "model", "train", "evaluate", "register")
    expected = {k for k in tiny_repo.cfg.flat() if k.split(".")[0] in logged}
    assert expected <= set(run.data.params)
    history = json.loads((tiny_repo.paths.plots / "loss.json").read_text())
    for key in ("train_loss", "val_loss"):
        steps = client.get_metric_history(result.run_id, key)
        assert [m.step for m in steps] == [h["epoch"] for h in history]
        assert [m.value for m in steps] == pytest.approx([h[key] for h in history])
    m = run.data.metrics
    assert m["test_mse_scaled"] == pytest.approx(result.mse_scaled)
    assert m["baseline_repeat_last_mse_scaled"] == pytest.approx(result.baseline_repeat_last_mse_scaled)
    assert "baseline_seasonal_naive_mse_scaled" in m and "test_mase" in m
    assert "train_best_val_loss" in m and "train_n_params" in m
    artifacts = _artifact_paths(client, result.run_id)
    for expected in (
        "plots/loss.png",
        "plots/forecast.png",
        "plots/error_by_step.png",
        "validation/validation.json",
        "validation/data_docs/index.html",
        "config/params.resolved.json",
        "config/params.yaml",
        "config/model/config.json",
        "metrics/evaluate.json",
        "metrics/by_series.parquet",  # per-series scores: an artifact, not a model per series
    ):
        assert expected in artifacts, f"{expected} not logged; artifacts are {sorted(artifacts)}"


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for f in client.list_artifacts(run_id, path):
        out |= _artifact_paths(client, run_id, f.path) if f.is_dir else {f.path}
    return out


def test_dvc_lock_is_logged_when_present(tiny_repo: Repo) -> None:
    (tiny_repo.root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    result = register(tiny_repo)
    assert "config/dvc.lock" in _artifact_paths(client_for(tiny_repo), result.run_id)


def test_validated_data_is_logged_as_a_training_dataset_input(series_repo: Repo) -> None:
    tiny_repo = series_repo
    result = register(tiny_repo)
    inputs = client_for(tiny_repo).get_run(result.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0]
    assert {t.key: t.value for t in ds.tags}["mlflow.data.context"] == "training"
    assert ds.dataset.source_type == "local"
    assert "data/validated/data.parquet" in ds.dataset.source
    assert json.loads(ds.dataset.profile)["num_rows"] == 600 * n_series(tiny_repo)
    assert ds.dataset.name.startswith("y ")


def test_lineage_tags_lead_back_to_commit_data_and_params(tiny_repo: Repo) -> None:
    root = tiny_repo.root
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text("data/\nmodels/\nmetrics/\nplots/\nreports/\nmlflow.db*\nmlartifacts/\n")
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny"], cwd=root, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    raw_files = [p for p in (root / "data/raw").rglob("*") if p.is_file()]
    lock = {
        "schema": "2.0",
        "stages": {
            "ingest": {
                "outs": [
                    {
                        "path": "data/raw",
                        "hash": "md5",
                        "md5": "0123456789abcdef0123456789abcdef.dir",
                        "size": sum(p.stat().st_size for p in raw_files),
                        "nfiles": len(raw_files),
                    }
                ]
            }
        },
    }
    import yaml

    (root / "dvc.lock").write_text(yaml.safe_dump(lock))  # untracked: the tree is now dirty
    result = register(tiny_repo)
    client = client_for(tiny_repo)
    tags = client.get_run(result.run_id).data.tags
    assert tags["git.commit"] == commit == tags["mlflow.source.git.commit"]
    assert tags["git.dirty"] == "true"
    assert tags["data.raw.hash"] == "0123456789abcdef0123456789abcdef.dir"
    assert tags["data.validated.hash"].startswith("sha256:")  # no lock entry: computed
    assert tags["data.hash_source"] == "computed,dvc.lock"
    cfg = tiny_repo.cfg
    logged = {
        **{name: getattr(cfg, name).model_dump(mode="json") for name in ("data", "split", "evaluate")},
        **_load(tiny_repo)[1].config,
        "register": cfg.register.model_dump(mode="json"),
    }
    assert tags["params.hash"] == params_hash(logged)
    assert tags["tsforecast.reproduce"] == f"git checkout {commit} && dvc checkout"
    assert f"git checkout {commit} && dvc checkout" in tags["mlflow.note.content"]
    version = client.get_model_version("tiny-lstm", "1")
    assert version.tags["git.commit"] == commit
    assert version.tags["data.raw.hash"] == tags["data.raw.hash"]
    assert f"git checkout {commit} && dvc checkout" in version.description


def test_version_carries_metrics_data_hash_and_fingerprint_tags(series_repo: Repo) -> None:
    tiny_repo = series_repo
    result = register(tiny_repo)
    tags = client_for(tiny_repo).get_model_version("tiny-lstm", "1").tags
    assert float(tags[MSE_TAG]) == result.mse_scaled
    assert float(tags["tsforecast.baseline_repeat_last_mse_scaled"]) == result.baseline_repeat_last_mse_scaled
    assert tags[FINGERPRINT_TAG] == result.fingerprint
    assert len(tags[DATA_HASH_TAG]) == 24
    assert tags["tsforecast.gate"] == result.reason
    for key in (
        "tsforecast.mae_scaled",
        "tsforecast.mase",
        "tsforecast.n_windows",
        "git.commit",
        "params.hash",
    ):
        assert key in tags


def test_rerun_registers_no_duplicate(tiny_repo: Repo) -> None:
    first = register(tiny_repo)
    again = register(tiny_repo)
    client = client_for(tiny_repo)
    assert again.reused is True and first.reused is False
    assert (again.version, again.run_id, again.champion) == (first.version, first.run_id, True)
    assert len(client.search_model_versions("name = 'tiny-lstm'")) == 1
    assert len(client.search_runs([first.experiment_id])) == 1


def test_sqlite_store_keeps_artifacts_beside_it(tiny_repo: Repo) -> None:
    result = register(tiny_repo)
    run = client_for(tiny_repo).get_run(result.run_id)
    assert run.info.artifact_uri.startswith((tiny_repo.root / "mlartifacts").as_uri())
    assert any((tiny_repo.root / "mlartifacts").rglob("model.pt"))


# ---------------------------------------------------------------------------- task identity


def test_registered_json_and_the_version_record_the_task_identity(series_repo: Repo) -> None:
    tiny_repo = series_repo
    result = register(tiny_repo)
    written = json.loads((tiny_repo.paths.reports / "registered.json").read_text())
    id_column = None if n_series(tiny_repo) == 1 else ID
    assert written["identity_fields"] == {
        "data_source": "data/external/series.csv",
        "target": "y",
        "covariates": [],
        "freq": "h",  # resolved by validate from freq: auto
        "horizon": 6,
        "input_size": 24,
        "id_column": id_column,
    }
    assert written["identity"] == result.identity and len(result.identity) == 16
    assert written["champion_version"] == 1 and written["champion_identity"] == result.identity
    tags = client_for(tiny_repo).get_model_version("tiny-lstm", "1").tags
    assert tags["tsforecast.identity"] == result.identity
    assert tags["tsforecast.identity.data_source"] == "data/external/series.csv"
    assert tags["tsforecast.identity.freq"] == "h"
    assert tags["tsforecast.identity.horizon"] == "6"
    assert tags["tsforecast.identity.id_column"] == ("null" if id_column is None else id_column)


def test_new_rows_of_the_same_source_are_the_same_task(tiny_repo: Repo) -> None:
    first = register(tiny_repo)
    sine_frame(n=700, seed=7).to_csv(tiny_repo.root / "data/external/series.csv", index=False)
    run_stages(tiny_repo.root)
    second = register(tiny_repo)
    assert second.identity == first.identity
    assert second.champion_identity == first.identity
    assert second.aliases in (["champion"], ["challenger"])  # compared, not set aside


def _other_source(repo: Repo) -> None:
    """The same series under another file name: another data source, so another task."""
    (repo.root / "data/external/other.csv").write_bytes((repo.root / "data/external/series.csv").read_bytes())
    repo.set_params(data={"path": "data/external/other.csv"})
    run_stages(repo.root)


def test_another_data_source_is_registered_but_never_takes_the_alias(
    tiny_repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    first = register(tiny_repo)
    _other_source(tiny_repo)
    with caplog.at_level("INFO", logger="tsforecast"):
        second = register(tiny_repo)
    assert second.version == 2 and second.champion is False
    assert second.aliases == []
    assert champion_version(tiny_repo) == 1
    assert second.identity != first.identity
    assert second.champion_version == 1 and second.champion_identity == first.identity
    assert second.reason.startswith("registered only: v2 is another task than champion v1 (")
    assert "data_source: v2 has data/external/other.csv, v1 has data/external/series.csv" in second.reason
    assert "set register.model_name to a new name" in second.reason
    assert "`tsforecast promote 2 --force`" in second.reason
    lines = [r.getMessage() for r in caplog.records if "registered only" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_another_horizon_is_registered_but_never_takes_the_alias(tiny_repo: Repo) -> None:
    register(tiny_repo)
    tiny_repo.set_params(window={"horizon": 4})
    run_stages(tiny_repo.root, ("window", "train", "evaluate"))
    second = register(tiny_repo)
    assert second.aliases == [] and champion_version(tiny_repo) == 1
    assert "horizon: v2 has 4, v1 has 6" in second.reason
    assert second.identity_fields["horizon"] == 4


def test_under_dvc_exp_run_a_better_model_gets_only_the_challenger_alias(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = save_outputs(tiny_repo)
    perturb_model(tiny_repo, noise=0.02)
    first = register(tiny_repo)
    restore_outputs(tiny_repo, good)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-better")
    with caplog.at_level("INFO", logger="tsforecast"):
        second = register(tiny_repo)
    assert second.mse_scaled < first.mse_scaled  # it would have won outside an experiment
    assert second.champion is False and second.aliases == ["challenger"]
    assert champion_version(tiny_repo) == 1
    assert second.experiment == "exp-better"
    assert "`dvc exp run` (DVC_EXP_NAME=exp-better) get at most the challenger alias" in second.reason
    assert "this version gets at most the challenger alias" in caplog.text


def test_a_same_task_champion_that_cannot_be_rescored_keeps_the_alias(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(tiny_repo)
    sine_frame(n=700, seed=7).to_csv(tiny_repo.root / "data/external/series.csv", index=False)
    run_stages(tiny_repo.root)  # new rows: v1 must be re-scored on the new test windows
    monkeypatch.setattr(registry, "download_model", lambda name, v: "its artifacts hold no model.pt")
    second = register(tiny_repo)
    assert second.aliases == ["challenger"] and champion_version(tiny_repo) == 1
    assert "champion v1 keeps the alias: it cannot be re-scored on these test windows" in second.reason


def test_the_mlflow_run_spans_training_through_registration(tiny_repo: Repo) -> None:
    """The run starts when training started (model.pt's mtime less train_seconds), not at logging."""
    import os
    import time

    model = tiny_repo.paths.models / "model.pt"
    train_json = tiny_repo.paths.metrics / "train.json"
    trained_at = time.time() - 30.0  # training ended 30 s ago and took 20 s
    os.utime(model, (trained_at, trained_at))
    train = json.loads(train_json.read_text())
    train_json.write_text(json.dumps({**train, "train_seconds": 20.0}))

    result = register(tiny_repo)

    client = client_for(tiny_repo)
    run = client.get_run(result.run_id)
    assert run.info.start_time == pytest.approx((trained_at - 20.0) * 1000, abs=2)
    assert run.info.end_time - run.info.start_time >= 50_000
    assert run.info.status == "FINISHED"
    assert run.info.run_name and run.data.tags["mlflow.runName"] == run.info.run_name
    assert "mlflow.user" in run.data.tags and run.data.tags.get(FINGERPRINT_TAG)
    history = client.get_metric_history(result.run_id, "val_loss")
    stamps = [m.timestamp for m in sorted(history, key=lambda m: m.step)]
    assert stamps == sorted(stamps) and stamps[0] >= run.info.start_time
    assert stamps[-1] <= run.info.end_time


def test_the_experiment_opens_on_its_runs_in_the_mlflow_ui(tiny_repo: Repo) -> None:
    result = register(tiny_repo)

    exp = client_for(tiny_repo).get_experiment(result.experiment_id)
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"


# ---------------------------------------------------------------------------- the stage outputs it reads


def test_one_model_is_registered_with_the_per_series_scores_as_an_artifact(series_repo: Repo) -> None:
    import mlflow

    from tsforecast.registry.tracking import mlflow_context

    result = register(series_repo)
    c = client_for(series_repo)
    assert [m.name for m in c.search_registered_models()] == ["tiny-lstm"]  # one model, not one per series
    assert [int(v.version) for v in c.search_model_versions("name = 'tiny-lstm'")] == [1]
    local = c.download_artifacts(result.run_id, "metrics/by_series.parquet", str(series_repo.root / "dl"))
    first = pd.read_parquet(local).iloc[:, 0].astype(str).tolist()
    assert first == (["y"] if n_series(series_repo) == 1 else PANEL_IDS)
    with mlflow_context(tracking_uri(series_repo.paths)):
        meta = mlflow.models.get_model_info("models:/tiny-lstm/1").metadata["tsforecast"]
    assert meta["id_column"] == (None if n_series(series_repo) == 1 else ID)
    assert meta["horizon"] == 6 and "series_scalers" not in meta  # 10,000 series stay in model.pt


@pytest.mark.parametrize("series_repo", [3], ids=["panel_of_3"], indirect=True)
def test_a_panel_s_m4_numbers_are_run_metrics_version_tags_and_description(series_repo: Repo) -> None:
    result = register(series_repo)
    c = client_for(series_repo)
    metrics = json.loads((series_repo.paths.metrics / "evaluate.json").read_text())
    run_metrics = c.get_run(result.run_id).data.metrics
    assert run_metrics["test_owa"] == pytest.approx(metrics["owa"])
    assert run_metrics["baseline_naive2_smape"] == pytest.approx(metrics["baselines"]["naive2"]["smape"])
    version = c.get_model_version("tiny-lstm", "1")
    assert float(version.tags["tsforecast.owa"]) == pytest.approx(metrics["owa"])
    assert version.tags["tsforecast.n_series"] == "3"
    assert "One global model over 3 series: OWA" in version.description
    assert "plots/worst_series.png" in {a.path for a in c.list_artifacts(result.run_id, "plots")}


def test_metrics_that_do_not_describe_the_model_are_refused(series_repo: Repo) -> None:
    table = pd.read_parquet(series_repo.paths.metrics / "by_series.parquet")
    table.loc[0, "lstm_mse_scaled"] *= 1.5  # by_series.parquet of another model
    table.to_parquet(series_repo.paths.metrics / "by_series.parquet", index=False)
    first = "y" if n_series(series_repo) == 1 else "s0"
    with pytest.raises(
        RegistryError, match=rf"series {first}: mse_scaled .* in by_series.parquet; re-scored: "
    ):
        register(series_repo)
    assert client_for(series_repo).search_registered_models() == []


def test_an_evaluate_json_of_another_model_is_refused(series_repo: Repo) -> None:
    path = series_repo.paths.metrics / "evaluate.json"
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "mse_scaled": metrics["mse_scaled"] * 1.5}))
    with pytest.raises(
        RegistryError, match=r"does not describe .*model.pt on data/prepared/ \(mse_scaled .* re-scored: "
    ):
        register(series_repo)
    assert client_for(series_repo).search_registered_models() == []


def test_a_missing_by_series_file_is_refused_naming_it(series_repo: Repo) -> None:
    (series_repo.paths.metrics / "by_series.parquet").unlink()
    with pytest.raises(RegistryError, match=r"metrics/by_series.parquet is missing"):
        register(series_repo)


def test_a_model_of_other_columns_or_id_column_is_refused(series_repo: Repo) -> None:
    other = "store" if n_series(series_repo) == 1 else None
    series_repo.set_params(data={"id_column": other, "covariates": ["temp"]})
    with pytest.raises(RegistryError) as caught:
        register(series_repo)
    trained = None if other else ID
    assert (
        f"data.id_column is {other!r} but {series_repo.paths.models / 'model.pt'} was trained with {trained!r}"
        in str(caught.value)
    )
    assert "data.target + data.covariates is ['y', 'temp']" in str(caught.value)
    assert str(caught.value).endswith(registry.STOP)
    assert client_for(series_repo).search_registered_models() == []


@pytest.mark.parametrize("series_repo", [3], ids=["panel_of_3"], indirect=True)
def test_the_summary_shows_the_panel_s_m4_numbers(series_repo: Repo) -> None:
    from tsforecast.summary import build_summary

    run_stages(series_repo.root, ("backtest",))
    text = build_summary(series_repo.paths)
    m = json.loads((series_repo.paths.metrics / "evaluate.json").read_text())
    b = json.loads((series_repo.paths.metrics / "backtest.json").read_text())
    assert "Over 3 series, M4 measures (means over series, OWA against Naive2 = 1):" in text
    assert f"seasonal_naive  {m['baselines']['seasonal_naive']['smape']:>12.4g}" in text
    assert f"The LSTM's OWA {m['owa']:.4g}" in text
    assert "Highest MASE: " in text and "plots/worst_series.png" in text
    assert (
        f"per series of 3 ({b['n_cutoffs']} of {b['n_cutoffs_requested']} requested origins fit each test part)"
        in text
    )
