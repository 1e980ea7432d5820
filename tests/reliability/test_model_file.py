"""A model file that is not ours is refused at load through the CLI, and never executed.

``evaluate`` is the stage that loads ``models/model.pt``. Each test swaps that file for a
foreign one and runs ``tsforecast evaluate``: exit 1, one ``error:`` line naming the file and
why, no traceback, no code from the file run, and the previous metrics and plots kept.
(tests/unit/test_model.py covers ``load_model`` itself.)
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import Repo, assert_user_error
from tsforecast.training.model import MODEL_FORMAT

MODEL = "models/model.pt"
KEPT = ("metrics", "plots", "models")


class _Payload:
    """Unpickling this creates the folder ``marker``: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return os.mkdir, (str(self.marker),)


def plain_pickle(marker: Path, good: bytes) -> bytes:
    return pickle.dumps({"format": MODEL_FORMAT, "args": _Payload(marker)})


def torch_file_smuggling_an_object(marker: Path, good: bytes) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": MODEL_FORMAT, "state_dict": {}, "extra": _Payload(marker)}, buf)
    return buf.getvalue()


def truncated(marker: Path, good: bytes) -> bytes:
    return good[: len(good) // 2]


FOREIGN = {
    "plain_pickle_with_code": (plain_pickle, "it holds Python objects, not only tensors"),
    "torch_file_with_code": (torch_file_smuggling_an_object, "not a tsforecast model or a damaged file"),
    "truncated_model": (truncated, "not a tsforecast model or a damaged file"),
}


@pytest.mark.slow
@pytest.mark.parametrize(("make", "why"), FOREIGN.values(), ids=FOREIGN.keys())
def test_foreign_model_file_is_refused_by_evaluate_and_never_run(
    repo: Repo, tmp_path: Path, make: Callable[[Path, bytes], bytes], why: str
) -> None:
    marker = tmp_path / "code-from-the-model-file-ran"
    model = repo.root / MODEL
    model.write_bytes(make(marker, model.read_bytes()))
    before = repo.digest(KEPT)

    run = repo.tsforecast("evaluate")

    assert_user_error(run, "models/model.pt:", why, "it was not loaded - retrain with `tsforecast train`")
    assert not marker.exists(), "loading the model file ran code from it"
    assert repo.digest(KEPT) == before


def test_the_payload_runs_its_code_when_unpickled_plainly(tmp_path: Path) -> None:
    """The control: the files above really carry code that a plain ``pickle.load`` runs."""
    marker = tmp_path / "ran"
    pickle.loads(plain_pickle(marker, b""))
    assert marker.is_dir()
