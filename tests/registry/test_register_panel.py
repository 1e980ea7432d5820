"""The register stage for a panel, against a temp sqlite store: one global model version, per-series
scores as a run artifact, the identity with the id column, the gate on mse_scaled, the summary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from tests.helpers.eval_fixtures import ID, card_extra, noisy_model, panel_frame, write_repo
from tests.mlflow_fixtures import init_store
from tsforecast import stages
from tsforecast.config import load_config
from tsforecast.dataset.panel import load_panel
from tsforecast.errors import RegistryError
from tsforecast.paths import Paths
from tsforecast.registry.tracking import tracking_uri
from tsforecast.summary import build_summary
from tsforecast.training.model import LSTMForecaster, load_model, save_model

L, H, M = 8, 3, 4
SPLIT = {"train": 11, "val": 3, "test": 3}
WINDOW = {"input_size": L, "horizon": H}
NAME = "panel-lstm"


def seasonal_model(noise: float = 0.0) -> LSTMForecaster:
    """A model that forecasts the value one season (M) back (plus ``noise`` on the weights): it beats
    repeat_last on seasonal series."""
    torch.manual_seed(0)
    net = LSTMForecaster(1, L, H, hidden_size=4, num_layers=1, window_norm="last")
    assert net.skip is not None
    with torch.no_grad():
        for p in (net.head.weight, net.head.bias, net.skip.weight, net.skip.bias):
            p.zero_()
        for h in range(H):
            net.skip.weight[h, L + h - M] = 1.0
        for p in net.parameters():
            p.add_(noise * torch.randn(p.shape))
    return net.eval()


@pytest.fixture
def panel_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A panel repo (five seasonal series) with the seasonal model evaluated; cwd inside; no MLFLOW_* env."""
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    root = tmp_path / "repo"
    frame = panel_frame([40, 44, 36, 48, 42], period=M, seed=1)
    paths = write_repo(
        root,
        frame,
        SPLIT,
        WINDOW,
        model=seasonal_model(),
        evaluate={"seasonal_period": M, "plot_windows": 2},
        register={"model_name": NAME, "max_retries": 1, "retry_backoff_s": 0.1},
    )
    init_store(root / "mlflow.db")
    monkeypatch.chdir(root)
    run("evaluate", paths)
    return paths


def run(stage: str, paths: Paths) -> object:
    torch.set_num_threads(1)
    return stages.run_stage(stage, load_config(paths.params), paths)


def client(paths: Paths) -> MlflowClient:
    uri = tracking_uri(paths)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_panel_registers_one_global_model_with_per_series_scores_as_an_artifact(panel_repo: Paths) -> None:
    result = run("register", panel_repo)

    c = client(panel_repo)
    assert [m.name for m in c.search_registered_models()] == [NAME]  # one model, not one per series
    assert [int(v.version) for v in c.search_model_versions(f"name = '{NAME}'")] == [1]
    assert result.champion is True and result.aliases == ["champion"]
    artifacts = {a.path for a in c.list_artifacts(result.run_id, "metrics")}
    assert {"metrics/by_series.parquet", "metrics/evaluate.json"} <= artifacts
    assert "plots/worst_series.png" in {a.path for a in c.list_artifacts(result.run_id, "plots")}
    local = c.download_artifacts(result.run_id, "metrics/by_series.parquet", str(panel_repo.root / "dl"))
    assert pd.read_parquet(local)[ID].tolist() == ["s0", "s1", "s2", "s3", "s4"]
    metrics = json.loads((panel_repo.metrics / "evaluate.json").read_text())
    run_metrics = c.get_run(result.run_id).data.metrics
    assert run_metrics["test_owa"] == pytest.approx(metrics["owa"])
    assert run_metrics["baseline_naive2_smape"] == pytest.approx(metrics["baselines"]["naive2"]["smape"])
    tags = c.get_model_version(NAME, "1").tags
    assert float(tags["tsforecast.owa"]) == pytest.approx(metrics["owa"])
    assert tags["tsforecast.n_series"] == "5"
    assert "One global model over 5 series: OWA" in c.get_model_version(NAME, "1").description
    import mlflow

    from tsforecast.registry.tracking import mlflow_context

    with mlflow_context(tracking_uri(panel_repo)):
        meta = mlflow.models.get_model_info(f"models:/{NAME}/1").metadata["tsforecast"]
    assert meta["id_column"] == ID and "series_scalers" not in meta  # 10,000 series stay in model.pt


def test_the_task_identity_of_a_panel_names_its_id_column(panel_repo: Paths) -> None:
    result = run("register", panel_repo)
    assert result.identity_fields["id_column"] == ID
    assert result.identity_fields["freq"] == "h"
    tags = client(panel_repo).get_model_version(NAME, "1").tags
    assert tags["tsforecast.identity.id_column"] == ID


def test_the_gate_compares_panels_on_mse_scaled_and_a_worse_model_is_challenger(panel_repo: Paths) -> None:
    first = run("register", panel_repo)
    panel = load_panel(panel_repo.prepared)
    save_model(noisy_model(L, H, seed=3), panel_repo.models / "model.pt", card_extra(panel))
    run("evaluate", panel_repo)
    worse = json.loads((panel_repo.metrics / "evaluate.json").read_text())["mse_scaled"]
    assert worse > first.mse_scaled

    second = run("register", panel_repo)

    assert second.version == 2 and second.aliases == ["challenger"]
    assert second.champion_version == 1
    assert "test mse_scaled" in second.reason


def test_evaluate_json_that_does_not_describe_the_model_is_refused(panel_repo: Paths) -> None:
    table = pd.read_parquet(panel_repo.metrics / "by_series.parquet")
    table.loc[0, "lstm_mse_scaled"] *= 1.5  # by_series.parquet of another model
    table.to_parquet(panel_repo.metrics / "by_series.parquet", index=False)
    with pytest.raises(RegistryError, match=r"series s0: mse_scaled .* in by_series.parquet; re-scored: "):
        run("register", panel_repo)
    assert client(panel_repo).search_registered_models() == []


def test_a_missing_by_series_file_is_refused_naming_it(panel_repo: Paths) -> None:
    (panel_repo.metrics / "by_series.parquet").unlink()
    with pytest.raises(RegistryError, match=r"metrics/by_series.parquet is missing"):
        run("register", panel_repo)


def test_changed_panel_data_rescores_the_champion_on_the_new_windows(panel_repo: Paths) -> None:
    run("register", panel_repo)
    champion, _ = load_model(panel_repo.models / "model.pt")
    frame = panel_frame([44, 48, 40, 52, 46], period=M, seed=5)  # new rows: another draw, longer
    paths = write_repo(panel_repo.root, frame, SPLIT, WINDOW, model=seasonal_model(noise=0.05),
                             evaluate={"seasonal_period": M, "plot_windows": 2},
                             register={"model_name": NAME, "max_retries": 1, "retry_backoff_s": 0.1})  # fmt: skip
    run("evaluate", paths)

    second = run("register", paths)

    assert "re-scored on the current test windows" in second.reason
    panel = load_panel(paths.prepared)
    idx = panel.window_index("test")
    x, y = panel.gather(idx[:, 0], idx[:, 1])
    with torch.no_grad():
        expected = float(np.mean((champion(torch.from_numpy(x)).numpy() - y) ** 2))
    assert second.previous_champion_mse_scaled == pytest.approx(expected, rel=1e-4)
    assert second.mse_scaled != pytest.approx(expected, rel=1e-3)
    assert second.champion == (second.mse_scaled < expected)


def test_the_summary_shows_the_panel_s_m4_numbers(panel_repo: Paths) -> None:
    run("backtest", panel_repo)
    text = build_summary(panel_repo)
    m = json.loads((panel_repo.metrics / "evaluate.json").read_text())
    assert "Over 5 series, M4 measures (means over series, OWA against Naive2 = 1):" in text
    assert f"seasonal_naive  {m['baselines']['seasonal_naive']['smape']:>12.4g}" in text
    assert f"The LSTM's OWA {m['owa']:.4g}" in text
    assert "Highest MASE: " in text and "plots/worst_series.png" in text
    assert "per series of 5 (1 of 5 requested origins fit each test part)" in text
