"""pipelines.dvc_runner without DVC: retries from exit codes, pipeline order from the stage table."""

from __future__ import annotations

import pytest

from pipelines.dvc_runner import CommandResult, StageFailed, check, is_transient, order_stages
from tsforecast.stages import NAMES


def _failed(stage_code: int | None, dvc_code: int = 1, error: str = "") -> CommandResult:
    dvc_errors = [
        f"ERROR: failed to reproduce 'register': failed to run: tsforecast register, exited with {stage_code}"
    ]
    return CommandResult(
        args=["dvc", "repro"],
        returncode=dvc_code,
        error_lines=[error] if error else [],
        dvc_errors=dvc_errors if stage_code is not None else ["ERROR: something else"],
    )


@pytest.mark.parametrize(
    ("stage_code", "transient"),
    [(75, True), (-9, True), (137, True), (1, False), (2, False), (130, False)],
)
def test_a_stage_s_exit_code_alone_decides_a_retry(stage_code: int, transient: bool) -> None:
    assert is_transient(_failed(stage_code)) is transient


def test_error_text_that_sounds_transient_does_not_make_exit_1_transient() -> None:
    result = _failed(1, error="error: MLflow at http://127.0.0.1:9 is unreachable (Connection refused)")
    assert is_transient(result) is False


def test_dvc_failing_on_its_own_is_retried_only_when_it_moves_data() -> None:
    assert is_transient(_failed(None)) is False
    assert is_transient(_failed(None), moves_data=True) is True
    assert is_transient(_failed(None, dvc_code=-9)) is True  # DVC itself killed


def test_check_raises_with_the_stage_s_exit_code_and_its_error_lines() -> None:
    result = _failed(75, error="error: MLflow at http://127.0.0.1:9 is unreachable")
    with pytest.raises(
        StageFailed, match=r"stage 'register' failed \(exit 75, transient, retried\)\nerror: MLflow"
    ) as e:
        check(result, "stage 'register'")
    assert e.value.transient and e.value.returncode == 75


def test_order_stages_follows_the_stage_table_then_the_file() -> None:
    assert order_stages(["extra", *reversed(NAMES)]) == [*NAMES, "extra"]
    assert order_stages(NAMES, ["window", "ingest"]) == ["ingest", "window"]
    with pytest.raises(ValueError, match=r"stages \['predict'\] are not in dvc.yaml; its stages are"):
        order_stages(NAMES, ["predict"])
