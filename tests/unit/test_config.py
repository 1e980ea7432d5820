"""config.py: params.yaml -> frozen typed sections, defaults, one-line errors, overrides, hashes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tsforecast.config import (
    Config,
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    RegisterConfig,
    SplitConfig,
    TrainConfig,
    WindowConfig,
    config_from_dict,
    load_config,
)
from tsforecast.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"
SECTIONS = [
    "data", "split", "window", "model", "train", "evaluate", "register", "forecast", "backtest", "orchestration",
    "monitor",
]  # fmt: skip


def _write(tmp_path: Path, raw: Any, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _error(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    return str(err.value)


# ---------------------------------------------------------------- the repo's params.yaml


def test_repo_params_load_with_every_value_as_written():
    cfg = load_config(PARAMS)
    raw = yaml.safe_load(PARAMS.read_text())
    dumped = cfg.model_dump(mode="json")
    assert set(raw) <= set(SECTIONS)
    for section, values in raw.items():
        for key, value in values.items():
            assert dumped[section][key] == value, f"{section}.{key}"


def test_repo_params_are_frozen_at_every_level():
    cfg = load_config(PARAMS)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.window = WindowConfig()
    with pytest.raises(ValidationError, match="frozen"):
        cfg.window.horizon = 1
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train.epochs = 1
    assert isinstance(cfg.data.covariates, tuple)  # a list inside would be mutable
    assert cfg.window.horizon == yaml.safe_load(PARAMS.read_text())["window"]["horizon"]


def test_flat_params_use_dotted_keys_for_every_field():
    cfg = load_config(PARAMS)
    flat = cfg.flat()
    assert flat["window.horizon"] == cfg.window.horizon
    assert flat["split.lookback"] is cfg.split.lookback
    assert flat["data.covariates"] == list(cfg.data.covariates)
    n_fields = sum(len(type(getattr(cfg, s)).model_fields) for s in SECTIONS)
    assert len(flat) == n_fields


# ---------------------------------------------------------------- defaults


def test_missing_keys_and_sections_take_the_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, {"window": {"horizon": 24}, "train": {"epochs": 3}}))
    assert cfg.window == WindowConfig(horizon=24)
    assert cfg.window.input_size == 336 and cfg.window.stride == 1
    assert cfg.train == TrainConfig(epochs=3)
    assert cfg.train.batch_size == 64 and cfg.train.lr == 2e-3 and cfg.train.cpu_shards == "auto"
    assert cfg.split == SplitConfig()
    assert (cfg.split.train, cfg.split.val, cfg.split.test, cfg.split.lookback) == ("auto",) * 4
    assert cfg.split.resolved(1, 336, 48).train == 0.7 and cfg.split.resolved(3, 336, 48).val == 48
    assert cfg.data == DataConfig()
    assert cfg.data.path == "builtin:taylor" and cfg.data.covariates == ()
    assert cfg.model == ModelConfig()
    assert cfg.evaluate == EvaluateConfig(seasonal_period="auto", plot_windows=4)
    assert cfg.register == RegisterConfig()
    assert cfg.register.alias == "champion"


def test_an_empty_params_file_is_all_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing set\n")
    assert load_config(path) == Config()


# ---------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_names_it_and_the_sections():
    message = _error({"windw": {"horizon": 3}})
    assert "unknown key 'windw'" in message
    assert f"allowed keys here are {SECTIONS}" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [("window", "horizn"), ("train", "epocs"), ("split", "lookbak"), ("model", "hidden")],
)
def test_unknown_key_inside_a_section_names_it_and_the_section_keys(section, key):
    message = _error({section: {key: 1}})
    allowed = list(type(getattr(Config(), section)).model_fields)
    assert f"unknown key '{section}.{key}'" in message
    assert f"allowed keys here are {allowed}" in message


@pytest.mark.parametrize(("section", "key"), [("window", "intput_size"), ("train", "float16")])
def test_unknown_key_starting_like_a_type_name_is_still_named(section, key):
    """A typo of ``input_size`` starts with "int"; the error must still name it and its section."""
    message = _error({section: {key: 1}})
    allowed = list(type(getattr(Config(), section)).model_fields)
    assert f"unknown key '{section}.{key}'" in message
    assert f"allowed keys here are {allowed}" in message


def test_every_unknown_key_is_reported_at_once():
    message = _error({"window": {"horizn": 3, "strid": 2}, "extra": 1})
    lines = message.splitlines()
    assert len(lines) == 3
    assert {"window.horizn", "window.strid", "extra"} == {
        re.search(r"unknown key '([^']+)'", line).group(1) for line in lines
    }


# ---------------------------------------------------------------- wrong types and ranges


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"window": {"horizon": 0}}, ("window.horizon=0", "greater than 0")),
        ({"window": {"input_size": -5}}, ("window.input_size=-5", "greater than 0")),
        ({"window": {"horizon": "abc"}}, ("window.horizon='abc'", "valid integer")),
        ({"window": {"stride": 2.5}}, ("window.stride=2.5", "fractional part")),
        ({"model": {"dropout": 1.0}}, ("model.dropout=1.0", "less than 1")),
        ({"model": {"cell": "transformer"}}, ("model.cell='transformer'", "'lstm', 'gru' or 'rnn'")),
        ({"train": {"lr": -0.1}}, ("train.lr=-0.1", "greater than 0")),
        ({"train": {"device": "tpu"}}, ("train.device='tpu'", "use auto, cpu, cuda or cuda:N")),
        ({"train": {"device": "cuda:x"}}, ("train.device='cuda:x'", "use auto, cpu, cuda or cuda:N")),
        ({"data": {"freq": "bogus"}}, ("data.freq='bogus'", "not a pandas offset")),
        ({"data": {"fill_gaps": -1}}, ("data.fill_gaps=-1", "greater than or equal to 0")),
        ({"evaluate": {"plot_windows": -1}}, ("evaluate.plot_windows=-1", "greater than or equal to 0")),
        ({"register": {"model_name": ""}}, ("register.model_name=''", "at least 1 character")),
        ({"window": 5}, ("window=5", "valid dictionary")),
    ],
)
def test_wrong_type_or_range_names_the_key_and_the_value(raw, expected):
    message = _error(raw)
    assert message.startswith("params: ")
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize("value", [0, -2, "many"])
def test_bad_cpu_shards_names_the_key_and_the_value(value):
    """``train.cpu_shards`` is ``"auto" | PositiveInt``: the union must not leak into the key."""
    message = _error({"train": {"cpu_shards": value}})
    assert f"train.cpu_shards={value!r} is invalid" in message, message
    assert "literal" not in message and "<missing>" not in message, message


def test_good_cpu_shards_values_are_accepted():
    assert config_from_dict({"train": {"cpu_shards": "auto"}}).train.cpu_shards == "auto"
    assert config_from_dict({"train": {"cpu_shards": 3}}).train.cpu_shards == 3


def test_a_column_named_twice_is_refused():
    message = _error({"data": {"target": "y", "covariates": ["temp", "y"]}})
    assert "columns ['y'] are named more than once" in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_device_names_are_accepted(device):
    assert config_from_dict({"train": {"device": device}}).train.device == device


# ---------------------------------------------------------------- split


def test_split_fractions_summing_over_one_are_refused():
    message = _error({"split": {"train": 0.8, "val": 0.2, "test": 0.2}})
    assert "split fractions train+val+test = 1.2 > 1" in message
    assert "sum to at most 1" in message


def test_split_fractions_summing_to_one_despite_float_rounding_are_accepted():
    split = config_from_dict({"split": {"train": 0.34, "val": 0.56, "test": 0.1}}).split
    assert 0.34 + 0.56 + 0.1 > 1  # 1.0000000000000002 in floats
    assert not split.uses_counts
    assert (split.train, split.val, split.test) == (0.34, 0.56, 0.1)


def test_split_row_counts_are_accepted_and_may_sum_to_anything():
    split = config_from_dict({"split": {"train": 5000, "val": 700, "test": 1400}}).split
    assert split.uses_counts
    assert (split.train, split.val, split.test) == (5000, 700, 1400)


def test_split_mixing_fractions_and_counts_is_refused():
    message = _error({"split": {"train": 100, "val": 0.2, "test": 0.2}})
    assert "split mixes fractions and row counts" in message
    assert "use fractions for all three or integer row counts for all three" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1.0 is a float >= 1; write a row count as an integer (1)"),
        (300.0, "300.0 is a float >= 1; write a row count as an integer (300)"),
        (1.5, "1.5 must be a fraction in (0, 1) or a positive row count"),
        (0, "0 must be a fraction in (0, 1) or a positive row count"),
        (-0.2, "-0.2 must be a fraction in (0, 1) or a positive row count"),
        (True, "True must be a fraction in (0, 1) or a positive row count"),
        ("half", "'half' must be a fraction in (0, 1) or a positive row count"),
    ],
)
def test_bad_split_part_names_the_key_the_value_and_the_fix(value, expected):
    message = _error({"split": {"val": value}})
    assert f"split.val={value!r} is invalid" in message
    assert expected in message


@pytest.mark.parametrize(
    ("split", "looks_back"),
    [
        ({"train": 0.7, "val": 0.1, "test": 0.2, "lookback": "auto"}, False),  # fractions: inside their split
        ({"train": 500, "val": 100, "test": 100, "lookback": "auto"}, True),  # counts: they look back
        ({"lookback": True}, True),
        ({"train": 500, "val": 100, "test": 100, "lookback": False}, False),
    ],
)
def test_split_lookback_auto_follows_the_split_kind_unless_set(split, looks_back):
    resolved = config_from_dict({"split": split}).split.resolved(1, 336, 48)
    assert resolved.inputs_look_back is looks_back


def test_an_auto_split_is_fractions_for_one_series_and_end_anchored_horizons_for_many():
    split = config_from_dict({}).split
    one, many = split.resolved(1, 168, 48), split.resolved(5, 168, 48)
    assert (one.train, one.val, one.test, one.anchor_for(1)) == (0.7, 0.1, 0.2, "start")
    assert (many.train, many.val, many.test, many.anchor_for(5)) == (216, 48, 48, "end")
    assert many.inputs_look_back  # counts: val/test inputs read the rows before them


def test_a_half_auto_split_is_refused_naming_the_parts():
    message = _error({"split": {"train": 0.8}})
    assert "split sets ['train'] but leaves ['test', 'val'] auto" in message


def test_split_lookback_refuses_other_values():
    message = _error({"split": {"lookback": "yes"}})
    assert "split.lookback='yes' is invalid" in message
    assert "'auto', True or False" in message


# ---------------------------------------------------------------- cross-section check


def test_seasonal_period_longer_than_the_input_window_is_refused():
    message = _error({"window": {"input_size": 48}, "evaluate": {"seasonal_period": 49}})
    assert "evaluate.seasonal_period=49 exceeds window.input_size=48" in message
    assert "raise input_size or lower the period" in message


def test_seasonal_period_equal_to_the_input_window_is_accepted():
    cfg = config_from_dict({"window": {"input_size": 48}, "evaluate": {"seasonal_period": 48}})
    assert cfg.evaluate.seasonal_period == cfg.window.input_size == 48


def test_a_set_period_above_the_input_size_is_an_error_naming_both():
    message = _error({"window": {"input_size": 96}, "evaluate": {"seasonal_period": 336}})
    assert "evaluate.seasonal_period=336 exceeds window.input_size=96" in message


def test_an_auto_period_lets_the_input_size_be_lowered():
    cfg = load_config(PARAMS, {"window.input_size": 96})
    assert cfg.evaluate.seasonal_period == "auto"  # resolved on the data, at most the input size


# ---------------------------------------------------------------- load_config: files and overrides


def test_overrides_set_dotted_keys_over_the_file():
    cfg = load_config(PARAMS, {"window.horizon": 24, "train.epochs": 1, "data.covariates": ["temp"]})
    base = load_config(PARAMS)
    assert cfg.window.horizon == 24 and cfg.train.epochs == 1 and cfg.data.covariates == ("temp",)
    assert cfg.window.input_size == base.window.input_size
    assert cfg.model == base.model and cfg.split == base.split
    assert base.window.horizon == 48  # the file itself is untouched
    assert yaml.safe_load(PARAMS.read_text())["window"]["horizon"] == 48


def test_an_override_may_add_a_section_missing_from_the_file(tmp_path):
    path = _write(tmp_path, {"window": {"horizon": 6, "input_size": 24}, "evaluate": {"seasonal_period": 24}})
    cfg = load_config(path, {"orchestration.train_pool": "gpu"})
    assert cfg.orchestration.train_pool == "gpu"
    assert cfg.window.horizon == 6


def test_overrides_are_validated_like_the_file():
    with pytest.raises(ConfigError, match=r"unknown key 'window\.horizn'"):
        load_config(PARAMS, {"window.horizn": 24})
    with pytest.raises(ConfigError, match=r"window\.horizon=0 is invalid"):
        load_config(PARAMS, {"window.horizon": 0})
    with pytest.raises(ConfigError, match=r"evaluate\.seasonal_period=400 exceeds window\.input_size=336"):
        load_config(PARAMS, {"evaluate.seasonal_period": 400})


def test_errors_from_a_file_name_the_file(tmp_path):
    path = _write(tmp_path, {"window": {"horizon": -1}}, name="mine.yaml")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: window\.horizon=-1 is invalid"):
        load_config(path)


def test_missing_params_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: params file not found; run from the repo root"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("window: {horizon: 3\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: not valid YAML"):
        load_config(path)


def test_params_that_are_not_a_mapping_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping of sections, got list"):
        load_config(_write(tmp_path, ["window", "horizon"]))


# ---------------------------------------------------------------- section_hash


def test_section_hash_is_short_hex_and_stable():
    a, b = load_config(PARAMS), load_config(PARAMS)
    assert re.fullmatch(r"[0-9a-f]{16}", a.section_hash())
    assert a.section_hash() == b.section_hash()
    assert a.section_hash("window", "model") == a.section_hash("model", "window")
    assert a.section_hash("window") != a.section_hash("model")


def test_section_hash_changes_with_its_section_only():
    base = load_config(PARAMS)
    changed = load_config(PARAMS, {"window.horizon": 24})
    assert changed.section_hash("window") != base.section_hash("window")
    assert changed.section_hash("window", "train") != base.section_hash("window", "train")
    assert changed.section_hash() != base.section_hash()
    for other in ("data", "split", "model", "train", "evaluate", "register", "orchestration"):
        assert changed.section_hash(other) == base.section_hash(other), other
    assert changed.section_hash("model", "train") == base.section_hash("model", "train")


def test_section_hash_sees_a_default_made_explicit_as_the_same_config(tmp_path):
    implicit = load_config(
        _write(tmp_path, {"window": {"input_size": 96}, "evaluate": {"seasonal_period": 48}})
    )
    explicit = load_config(
        PARAMS, {"window.input_size": 96, "evaluate.seasonal_period": 48, "window.stride": 1}
    )
    assert implicit.section_hash("window") == explicit.section_hash("window")


@pytest.mark.parametrize(
    ("levels", "expected"), [([0], "level 0 is not a percentage"), ([80, 80], "repeat a value")]
)
def test_forecast_levels_must_be_distinct_percentages(levels, expected):
    assert expected in _error({"forecast": {"levels": levels}})
    assert "forecast.levels" in _error({"forecast": {"levels": levels}})


@pytest.mark.parametrize(("n_series", "norm"), [(1, "last"), (3, "mean_std")])
def test_auto_norm_follows_the_number_of_series(n_series, norm):
    cfg = load_config(PARAMS)
    assert cfg.model.window_norm == "auto" and cfg.train.loss == "mae"
    assert cfg.model.resolved(n_series).window_norm == norm


def test_a_set_norm_is_kept_whatever_the_number_of_series():
    cfg = load_config(PARAMS, {"model.window_norm": "none"})
    assert cfg.model.resolved(5).window_norm == "none" and cfg.model.resolved(1).window_norm == "none"
