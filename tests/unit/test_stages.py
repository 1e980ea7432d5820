"""The stage table (tsforecast.stages) against dvc.yaml, the stage signatures and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tsforecast import cli, stages
from tsforecast.config import Config, DataConfig, EvaluateConfig, OrchestrationConfig
from tsforecast.errors import DataError, TransientError
from tsforecast.parallel import DASK_ADDRESS_ENV, DaskUnavailableError
from tsforecast.paths import Paths

REPO = Path(__file__).resolve().parents[2]
DVC_STAGES: dict[str, Any] = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _param_sections(stage: str) -> set[str]:
    """Top-level params.yaml sections of a dvc.yaml stage's ``params:`` (``data.target`` -> data)."""
    entries = DVC_STAGES[stage].get("params") or []
    names = [k for e in entries for k in (e if isinstance(e, dict) else [e])]
    return {str(n).split(".")[0] for n in names}


def test_dvc_yaml_has_the_table_s_stages_in_the_table_s_order() -> None:
    assert list(DVC_STAGES) == list(stages.NAMES)


@pytest.mark.parametrize("spec", stages.STAGES, ids=lambda s: s.name)
def test_dvc_params_list_exactly_the_result_sections_the_stage_function_takes(spec: stages.StageSpec) -> None:
    sections = spec.sections()
    assert set(sections) <= set(Config.model_fields), f"{spec.target}{sections}: not all params sections"
    assert _param_sections(spec.name) == set(spec.result_sections()), (
        f"dvc.yaml stage '{spec.name}' params {DVC_STAGES[spec.name].get('params')} "
        f"vs {spec.target} parameters {sections} less the execution sections {sorted(stages.EXECUTION_SECTIONS)}"
    )


def test_where_work_runs_is_in_no_stage_s_dvc_params() -> None:
    listed = {stage: _param_sections(stage) & stages.EXECUTION_SECTIONS for stage in DVC_STAGES}
    assert listed == dict.fromkeys(DVC_STAGES, set())
    takers = {s.name for s in stages.STAGES if "orchestration" in s.sections()}
    assert takers == {"validate", "evaluate", "backtest", "forecast"}  # they read it, DVC does not track it


@pytest.mark.parametrize("spec", stages.STAGES, ids=lambda s: s.name)
def test_every_stage_calls_its_cli_subcommand_and_depends_on_the_whole_package(
    spec: stages.StageSpec,
) -> None:
    assert DVC_STAGES[spec.name]["cmd"] == f"tsforecast {spec.name}"
    assert "src/tsforecast" in DVC_STAGES[spec.name]["deps"]
    assert spec.target.endswith(f":run_{spec.name}")


def test_unknown_stage_names_the_stages() -> None:
    with pytest.raises(KeyError, match=r"no stage 'predict'; stages are \['ingest', 'validate'"):
        stages.get("predict")


def fake_stage(data: DataConfig, evaluate: EvaluateConfig, paths: Paths) -> dict[str, Any]:
    return {"data": data, "evaluate": evaluate, "paths": paths}


def test_run_passes_the_sections_the_signature_names_and_paths(tmp_path: Path) -> None:
    cfg = Config(evaluate=EvaluateConfig(seasonal_period=7))
    paths = Paths.from_root(tmp_path)
    spec = stages.StageSpec("fake", "a test stage", lambda: fake_stage)

    got = spec.run(cfg, paths)

    assert spec.sections() == ("data", "evaluate")
    assert got == {"data": cfg.data, "evaluate": cfg.evaluate, "paths": paths}


def fake_parallel_stage(data: DataConfig, orchestration: OrchestrationConfig, paths: Paths) -> str | None:
    return orchestration.dask_address


def test_run_passes_the_dask_address_the_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = Config(orchestration=OrchestrationConfig(dask_address="tcp://10.0.0.1:8786"))
    spec = stages.StageSpec("fake", "a test stage", lambda: fake_parallel_stage)
    paths = Paths.from_root(tmp_path)
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert spec.run(cfg, paths) == "tcp://10.0.0.1:8786"
    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://127.0.0.1:9999")
    assert spec.run(cfg, paths) == "tcp://127.0.0.1:9999"
    monkeypatch.setenv(DASK_ADDRESS_ENV, "null")
    assert spec.run(cfg, paths) is None
    assert spec.result_sections() == ("data",)


def not_a_section(data: DataConfig, colour: str, paths: Paths) -> None:
    raise AssertionError("not called")


def test_a_parameter_that_is_no_section_is_named_in_the_error(tmp_path: Path) -> None:
    spec = stages.StageSpec("bad", "", lambda: not_a_section)
    with pytest.raises(TypeError, match=r"parameter 'colour' is not a params.yaml section"):
        spec.run(Config(), Paths.from_root(tmp_path))


def test_cli_has_one_subcommand_per_stage_with_the_table_s_help() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps = {a.dest: a.help for a in sub._choices_actions}
    for spec in stages.STAGES:
        assert helps[spec.name] == spec.help


def _main_with_stage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception
) -> tuple[int, str]:
    def fail(self: stages.StageSpec, cfg: Config, paths: Paths) -> None:
        raise error

    (tmp_path / "params.yaml").write_text("")
    monkeypatch.setattr(stages.StageSpec, "run", fail)
    code = cli.main(["register", "--root", str(tmp_path)])
    return code, capsys.readouterr().err


def test_cli_exits_75_for_a_transient_failure_with_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = TransientError("MLflow at http://127.0.0.1:9 is unreachable; the model was not registered")
    code, err = _main_with_stage_error(tmp_path, monkeypatch, capsys, error)
    assert code == cli.EX_TEMPFAIL == 75
    assert err == f"error: {error}\n"


def test_cli_exits_75_for_a_lost_dask_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = DaskUnavailableError("cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 10 s")
    code, err = _main_with_stage_error(tmp_path, monkeypatch, capsys, error)
    assert code == cli.EX_TEMPFAIL == 75
    assert err == f"error: {error}\n"


def test_cli_exits_1_for_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main_with_stage_error(tmp_path, monkeypatch, capsys, DataError("column 'y' not found"))
    assert code == 1
    assert err == "error: column 'y' not found\n"


def test_cli_help_imports_no_stage_module() -> None:
    code = (
        "import sys; from tsforecast import cli; cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'pandas', 'tsforecast.training.train', 'tsforecast.data.validate') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_stage_function_is_one_import_away_in_the_stage_table() -> None:
    """dvc.yaml's `tsforecast <stage>` -> the table -> an import statement naming the function."""
    source = Path(stages.__file__).read_text()
    for spec in stages.STAGES:
        f = spec.function()
        assert f.__name__ == f"run_{spec.name}"
        assert f"from {f.__module__} import {f.__name__}" in source
