"""The register stage under faults: an unreachable server, concurrent registrations, failed stages.

(a) an unreachable MLflow: bounded retries, then one clear error naming the URI; a rerun
    registers exactly one version;
(b) two registrations at once both get versions and the champion ends on the better one
    (sqlite: a file lock; a server: the compare-and-set gate); both wait at a barrier first,
    so they really overlap and the tests cannot pass with them run one after the other;
(c) nothing is registered and the alias does not move when an earlier stage failed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from tests.helpers.barrier_registration import register_at_barrier
from tests.helpers.mlflow_fixtures import (  # noqa: F401
    MlflowServer,
    Repo,
    clean_env,
    fixture_mlflow_server,
    fixture_tiny_repo,
    fixture_tiny_repo_template,
    free_port,
    init_store,
    perturb_model,
    run_cli,
)
from tsforecast.cli import main
from tsforecast.errors import RegistryError, TransientError
from tsforecast.registry import register as registry
from tsforecast.registry.register import RegisterResult, run_register
from tsforecast.registry.tracking import tracking_uri
from tsforecast.registry.types import FINGERPRINT_TAG
from tsforecast.training.model import load_model, save_model

EVALUATED = (
    "models/model.pt",
    "metrics/evaluate.json",
    "metrics/by_series.parquet",
)  # a model and its scores


def register(repo: Repo, **register_changes: object) -> RegisterResult:
    """The register stage as the CLI calls it, with optional changes to the register section."""
    cfg = repo.cfg
    rc = cfg.register.model_copy(update=register_changes)
    return run_register(cfg.data, cfg.split, cfg.window, cfg.evaluate, rc, repo.paths)


def client_at(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(uri: str, name: str = "tiny-lstm") -> list:
    return client_at(uri).search_model_versions(f"name = '{name}'")


def champion(uri: str, name: str = "tiny-lstm") -> int:
    return int(client_at(uri).get_model_version_by_alias(name, "champion").version)


def fingerprint_of(uri: str, version: int, name: str = "tiny-lstm") -> str:
    return client_at(uri).get_model_version(name, str(version)).tags[FINGERPRINT_TAG]


# ---------------------------------------------------------------------------- (a) unreachable


def test_unreachable_server_fails_after_bounded_retries_naming_the_uri(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    t0 = time.monotonic()
    with pytest.raises(TransientError) as err:
        register(tiny_repo)  # register.max_retries=2, retry_backoff_s=0.1
    elapsed = time.monotonic() - t0
    message = str(err.value)
    assert message.startswith(f"MLflow at {url} is unreachable: 3 attempt(s) over")
    assert "rerun `dvc repro`" in message and "without a duplicate version" in message
    assert elapsed < 60, f"bounded retries took {elapsed:.0f} s"
    assert not (tiny_repo.paths.reports / "registered.json").exists()
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") is None  # MLflow's own retries: restored


def test_cli_prints_one_line_for_an_unreachable_server(tiny_repo: Repo) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("register", cwd=tiny_repo.root, env=clean_env(MLFLOW_TRACKING_URI=url), timeout=180)
    assert proc.returncode == 75  # EX_TEMPFAIL: a retry may fix it
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: MLflow at {url} is unreachable")
    assert proc.stderr.count("attempt") >= 2  # the retries are logged as warnings


def _fail(exc: Exception, times: int):
    calls = {"n": 0}

    def wrap(real):
        def fake(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] <= times:
                raise exc
            return real(*args, **kwargs)

        return fake

    return wrap, calls


def test_outage_after_the_run_was_logged_then_rerun_registers_exactly_one_version(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    wrap, calls = _fail(requests.exceptions.ConnectionError("Connection refused"), times=1)
    monkeypatch.setattr(mlflow, "register_model", wrap(mlflow.register_model))
    with pytest.raises(TransientError, match="is unreachable: 1 attempt"):
        register(tiny_repo, max_retries=0)
    assert calls["n"] == 1
    uri = tracking_uri(tiny_repo.paths)
    assert versions(uri) == []
    result = register(tiny_repo, max_retries=0)  # the server is back
    assert (result.version, result.champion, result.reused) == (1, True, False)
    assert len(versions(uri)) == 1
    runs = client_at(uri).search_runs([result.experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]  # the interrupted run was reused
    assert register(tiny_repo, max_retries=0).version == 1  # and again: still one version


def test_outage_while_logging_is_retried_and_leaves_one_run(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    wrap, calls = _fail(requests.exceptions.ConnectionError("Connection aborted"), times=1)
    monkeypatch.setattr(mlflow.pyfunc, "log_model", wrap(mlflow.pyfunc.log_model))
    result = register(tiny_repo)  # max_retries=2: the second attempt works
    assert calls["n"] == 2
    uri = tracking_uri(tiny_repo.paths)
    assert len(versions(uri)) == 1 and result.champion
    client = client_at(uri)
    active = client.search_runs([result.experiment_id])
    assert [r.info.run_id for r in active] == [result.run_id]  # the half-logged run was deleted
    deleted = client.search_runs([result.experiment_id], run_view_type=2)  # DELETED_ONLY
    assert len(deleted) == 1 and deleted[0].info.status == "FAILED"


def test_a_non_transient_error_is_not_retried(tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    wrap, calls = _fail(MlflowException("permission denied", error_code="PERMISSION_DENIED"), times=5)
    monkeypatch.setattr(mlflow, "register_model", wrap(mlflow.register_model))
    with pytest.raises(RegistryError, match=r"refused to register: permission denied"):
        register(tiny_repo)
    assert calls["n"] == 1


# ---------------------------------------------------------------------------- (b) concurrency


def _two_repos(template: Path, tmp_path: Path) -> tuple[Repo, Repo, float, float]:
    """A copy with the trained model and a copy with a worse (perturbed) one."""
    good = Repo(tmp_path / "good")
    shutil.copytree(template, good.root, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    worse = Repo(tmp_path / "worse")
    shutil.copytree(template, worse.root, ignore=shutil.ignore_patterns("mlflow.db*", "mlartifacts"))
    worse_mse = perturb_model(worse, noise=0.02)
    good_mse = json.loads((good.paths.metrics / "evaluate.json").read_text())["mse_scaled"]
    assert good_mse < worse_mse
    return good, worse, good_mse, worse_mse


def _register_at_once(repos: list[Repo], uri: str, where: str) -> list[dict]:
    """Register each repo in its own process; both wait at a barrier at ``where`` first."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(repos))
    procs = [ctx.Process(target=register_at_barrier, args=(str(r.root), uri, barrier, where)) for r in repos]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    for r, p in zip(repos, procs, strict=True):
        log = (r.root / "register.log").read_text() if (r.root / "register.log").exists() else ""
        assert p.exitcode == 0, f"{r.root.name}: exit {p.exitcode}\n{log[-3000:]}"
        assert f"passed {where}" in log  # it met the other registration there
    return [json.loads((r.paths.reports / "registered.json").read_text()) for r in repos]


def test_two_registrations_at_once_on_sqlite_both_register_and_the_better_is_champion(
    tiny_repo_template: Path, tmp_path: Path
) -> None:
    good, worse, _, _ = _two_repos(tiny_repo_template, tmp_path)
    uri = init_store(tmp_path / "shared" / "mlflow.db")
    results = _register_at_once([worse, good], uri, where="store_lock")
    assert sorted(r["version"] for r in results) == [1, 2]
    good_result = results[1]
    assert champion(uri) == good_result["version"]
    assert good_result["champion"] is True
    assert fingerprint_of(uri, champion(uri)) == good_result["fingerprint"]
    logs = [(r.root / "register.log").read_text() for r in (worse, good)]
    waited = [log for log in logs if "another registration holds" in log]
    assert len(waited) == 1  # they overlapped: one found the store locked by the other and waited


def _stale_write(monkeypatch: pytest.MonkeyPatch, version: str) -> dict:
    """The next champion alias write is followed at once by another process's write of ``version``."""
    real = MlflowClient.set_registered_model_alias
    state = {"fired": False}

    def fake(self, name, alias, v):
        real(self, name, alias, v)
        if alias == "champion" and not state["fired"]:
            state["fired"] = True
            real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fake)
    return state


@pytest.fixture
def unlocked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the gate as against a remote server: no file lock, compare-and-set only."""
    import contextlib

    @contextlib.contextmanager
    def no_lock(uri: str):
        yield False

    monkeypatch.setattr(registry, "store_lock", no_lock)


def test_gate_moves_the_alias_back_when_a_worse_version_overwrote_it(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch, unlocked: None, caplog: pytest.LogCaptureFixture
) -> None:
    good = {f: (tiny_repo.root / f).read_bytes() for f in EVALUATED}
    perturb_model(tiny_repo, noise=0.02)
    assert register(tiny_repo).champion  # v1: worse, champion for now
    for f, data in good.items():
        (tiny_repo.root / f).write_bytes(data)
    _stale_write(monkeypatch, "1")  # a concurrent registration that still thinks v1 wins
    with caplog.at_level("INFO", logger="tsforecast"):
        result = register(tiny_repo)
    assert result.version == 2 and result.champion is True
    assert champion(tracking_uri(tiny_repo.paths)) == 2
    assert "moved to v1 meanwhile, but v2 is better: moving it back" in caplog.text


def test_gate_yields_when_a_better_version_won_meanwhile(
    tiny_repo: Repo, monkeypatch: pytest.MonkeyPatch, unlocked: None
) -> None:
    uri = tracking_uri(tiny_repo.paths)
    good = {f: (tiny_repo.root / f).read_bytes() for f in EVALUATED}
    perturb_model(tiny_repo, noise=0.05)
    assert register(tiny_repo).champion  # v1: the worst
    for f, data in good.items():
        (tiny_repo.root / f).write_bytes(data)
    best = register(tiny_repo)  # v2: the best, champion
    assert best.champion and best.version == 2
    client_at(uri).set_registered_model_alias("tiny-lstm", "champion", "1")  # pretend v2 is still racing
    perturb_model(tiny_repo, noise=0.01)  # v3: between the two
    _stale_write(monkeypatch, "2")  # v2's registration lands its alias just after v3's
    result = register(tiny_repo)
    assert result.version == 3
    assert result.champion is False and result.aliases == ["challenger"]
    assert champion(uri) == 2
    assert "does not beat champion v2's" in result.reason


@pytest.mark.e2e
def test_two_registrations_at_once_on_a_server_both_register_and_the_better_is_champion(
    tiny_repo_template: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    good, worse, _, _ = _two_repos(tiny_repo_template, tmp_path)
    for r in (good, worse):
        r.set_params(register={"model_name": "race-lstm"})
    results = _register_at_once([worse, good], mlflow_server.url, where="apply_alias")
    assert sorted(r["version"] for r in results) == [1, 2]
    assert champion(mlflow_server.url, "race-lstm") == results[1]["version"]
    assert results[1]["champion"] is True and results[0]["champion"] is False


# ---------------------------------------------------------------------------- (c) failed stages


def _nothing_registered(repo: Repo) -> None:
    assert client_at(tracking_uri(repo.paths)).search_registered_models() == []
    assert not (repo.paths.reports / "registered.json").exists()


def test_refuses_when_evaluate_did_not_run(tiny_repo: Repo) -> None:
    (tiny_repo.paths.metrics / "evaluate.json").unlink()
    with pytest.raises(RegistryError, match=r"evaluate.json not found: the evaluate stage has not run"):
        register(tiny_repo)
    _nothing_registered(tiny_repo)


def test_refuses_when_train_did_not_run(tiny_repo: Repo) -> None:
    shutil.rmtree(tiny_repo.paths.models)
    with pytest.raises(RegistryError, match=r"model.pt not found: the train stage has not run"):
        register(tiny_repo)
    _nothing_registered(tiny_repo)


def test_refuses_when_the_metrics_are_older_than_a_retrained_model(tiny_repo: Repo) -> None:
    import torch

    path = tiny_repo.paths.models / "model.pt"
    model, extra = load_model(path)
    with torch.no_grad():
        model.head.bias.add_(0.5)  # retrained, say; evaluate then failed
    save_model(model, path, extra)
    old = path.stat().st_mtime - 60
    os.utime(tiny_repo.paths.metrics / "evaluate.json", (old, old))
    with pytest.raises(
        RegistryError, match=r"does not describe .*model.pt on data/prepared/ .*older than the model"
    ):
        register(tiny_repo)
    _nothing_registered(tiny_repo)


def test_failed_stage_leaves_the_champion_where_it_was(tiny_repo: Repo, capsys) -> None:
    first = register(tiny_repo)
    perturb_model(tiny_repo, noise=0.001)  # a new model ...
    (tiny_repo.paths.metrics / "evaluate.json").unlink()  # ... whose evaluate stage failed
    capsys.readouterr()
    assert main(["register", "--root", str(tiny_repo.root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    uri = tracking_uri(tiny_repo.paths)
    assert len(versions(uri)) == 1 and champion(uri) == first.version
