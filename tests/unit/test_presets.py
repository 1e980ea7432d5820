"""Shipped params.yaml presets and ``tsforecast init --preset`` (issue 19, item 5)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tsforecast import cli, presets
from tsforecast.config import BUILTIN_M4_HOURLY, config_from_dict
from tsforecast.data.ingest import run_ingest
from tsforecast.errors import ConfigError
from tsforecast.io import read_json
from tsforecast.paths import RAW_META, Paths

REPO = Path(__file__).resolve().parents[2]


def flat_keys(raw: dict[str, Any]) -> set[str]:
    return {f"{section}.{key}" for section, values in raw.items() for key in values}


def init(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["init", "--root", str(root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_default_preset_is_the_repo_s_params_yaml_byte_for_byte() -> None:
    assert presets.names() == ["m4-hourly", "taylor"]
    assert presets.preset_text(presets.DEFAULT_PRESET) == (REPO / "params.yaml").read_text()


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_loads_and_sets_every_key_of_params_yaml(name: str) -> None:
    raw = yaml.safe_load(presets.preset_text(name))
    config_from_dict(raw, name)
    # dvc.yaml lists keys by name: a key missing from a preset would fail every `dvc repro`
    assert flat_keys(raw) == flat_keys(yaml.safe_load((REPO / "params.yaml").read_text()))


def test_the_m4_preset_is_the_m4_protocol_under_a_model_name_of_its_own() -> None:
    m4 = config_from_dict(yaml.safe_load(presets.preset_text("m4-hourly")))
    default = config_from_dict(yaml.safe_load(presets.preset_text("taylor")))
    assert (m4.data.path, m4.data.id_column, m4.data.target) == (BUILTIN_M4_HOURLY, "unique_id", "value")
    assert (m4.split.val, m4.split.test, m4.window.horizon, m4.evaluate.seasonal_period) == (48, 48, 48, 24)
    assert m4.register.model_name == "tsforecast-m4-hourly" != default.register.model_name


def test_init_switches_to_the_panel_and_back_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((REPO / "params.yaml").read_text())

    code, out, _ = init(tmp_path, capsys, "--preset", "m4-hourly")
    assert code == 0
    assert params.read_text() == presets.preset_text("m4-hourly")
    assert "register.model_name tsforecast-m4-hourly" in out
    assert "back: tsforecast init --preset taylor" in out

    code, out, _ = init(tmp_path, capsys, "--preset", "taylor")
    assert code == 0
    assert params.read_text() == (REPO / "params.yaml").read_text()
    assert "back: tsforecast init --preset m4-hourly" in out


def test_init_in_an_empty_folder_writes_the_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = init(tmp_path, capsys, "--preset", "m4-hourly")
    assert code == 0 and (tmp_path / "params.yaml").read_text() == presets.preset_text("m4-hourly")


def test_init_keeps_edits_of_the_user_s_own_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    mine = (REPO / "params.yaml").read_text().replace("epochs: 30", "epochs: 3")
    params.write_text(mine)

    code, _, err = init(tmp_path, capsys, "--preset", "m4-hourly")
    assert code == 1
    assert "holds edits of its own" in err and "--force" in err
    assert params.read_text() == mine

    code, out, _ = init(tmp_path, capsys, "--preset", "m4-hourly", "--force")
    assert code == 0 and params.read_text() == presets.preset_text("m4-hourly")
    assert "back: git checkout params.yaml" in out


def test_an_unknown_preset_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"--preset 'm5' is not a shipped preset; presets are \['m4-hourly', 'taylor'\]"
    ):
        presets.write_preset("m5", tmp_path / "params.yaml")


def test_init_list_names_each_preset_s_data_and_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = init(tmp_path, capsys, "--list")
    assert code == 0
    assert (
        "m4-hourly: data.path builtin:m4-hourly (a panel by 'unique_id'), register.model_name tsforecast-m4-hourly"
        in out
    )
    assert "taylor: data.path builtin:taylor (one series), register.model_name tsforecast-lstm" in out


def test_the_presets_are_package_data_of_the_wheel() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.yaml" in pyproject["tool"]["setuptools"]["package-data"]["tsforecast.presets"]


def test_the_m4_preset_s_builtin_data_path_ingests_the_414_series(tmp_path: Path) -> None:
    cfg = config_from_dict(yaml.safe_load(presets.preset_text("m4-hourly")))
    paths = Paths.from_root(tmp_path)
    run_ingest(cfg.data, paths)
    assert read_json(paths.raw / RAW_META)["source"] == BUILTIN_M4_HOURLY
