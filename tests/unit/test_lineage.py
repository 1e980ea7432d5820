"""Task identity and lineage helpers: pure, no MLflow."""

from __future__ import annotations

from tsforecast.registry.lineage import (
    IDENTITY_FIELDS,
    flat_metrics,
    identity_from_tags,
    task_identity,
)


def taylor(**changes):
    fields = dict(
        data_path="builtin:taylor", target="demand", covariates=(), freq="30min", horizon=48, input_size=336
    )
    fields.update(changes)
    return task_identity(**fields)


def test_identity_fields_are_the_documented_list() -> None:
    assert list(taylor().fields()) == list(IDENTITY_FIELDS) == [
        "data_source", "target", "covariates", "freq", "horizon", "input_size", "id_column",
    ]  # fmt: skip
    assert taylor().fields() == {
        "data_source": "builtin:taylor",
        "target": "demand",
        "covariates": [],
        "freq": "30min",
        "horizon": 48,
        "input_size": 336,
        "id_column": None,
    }


def test_each_identity_field_changes_the_hash() -> None:
    base = taylor().hash
    changed = [
        taylor(data_path="data/external/other.csv"),
        taylor(target="load"),
        taylor(covariates=("temp",)),
        taylor(freq="h"),
        taylor(horizon=26),
        taylor(input_size=168),
        taylor(id_column="unique_id"),
    ]
    hashes = {c.hash for c in changed}
    assert base not in hashes and len(hashes) == len(changed)


def test_the_same_file_written_two_ways_is_the_same_source() -> None:
    assert taylor(data_path="./data/external/x.csv").hash == taylor(data_path="data/external/x.csv").hash


def test_identity_round_trips_through_version_tags() -> None:
    ident = taylor(covariates=("temp",))
    tags = ident.tags()
    assert tags["tsforecast.identity"] == ident.hash
    assert tags["tsforecast.identity.horizon"] == "48"
    assert tags["tsforecast.identity.covariates"] == '["temp"]'
    assert tags["tsforecast.identity.id_column"] == "null"
    assert tags["tsforecast.identity.data_source"] == "builtin:taylor"
    view = identity_from_tags({**tags, "git.commit": "abc"})
    assert view == ident.view() and view.same_task(ident.view())


def test_differences_name_each_differing_field_with_both_values() -> None:
    a, b = taylor().view(), taylor(data_path="x.csv", horizon=26).view()
    assert a.differences(b, "v1", "v2") == [
        "data_source: v1 has builtin:taylor, v2 has x.csv",
        "horizon: v1 has 48, v2 has 26",
    ]
    assert not a.same_task(b)


def test_a_version_without_identity_tags_is_no_known_task() -> None:
    old = identity_from_tags({"git.commit": "abc"})
    assert old.hash is None
    assert not old.same_task(old)
    assert taylor().view().differences(old, "v2", "v1")[0].startswith("v1 records no task identity")


def test_flat_metrics_names_test_baseline_and_train_values() -> None:
    evaluate = {
        "mse_scaled": 0.1,
        "n_windows": 3,
        "baselines": {"repeat_last": {"mse_scaled": 0.5}, "seasonal_naive": {"mse_scaled": 0.2}},
        "beats": {"repeat_last": True, "seasonal_naive": False},
    }
    train = {"epochs": 2, "best_val_loss": 0.3, "train_seconds": 1.5, "device": "cpu"}
    assert flat_metrics(evaluate, train) == {
        "test_mse_scaled": 0.1,
        "test_n_windows": 3.0,
        "baseline_repeat_last_mse_scaled": 0.5,
        "baseline_seasonal_naive_mse_scaled": 0.2,
        "test_beats_repeat_last": 1.0,
        "test_beats_seasonal_naive": 0.0,
        "train_epochs": 2.0,
        "train_best_val_loss": 0.3,
        "train_seconds": 1.5,
    }
