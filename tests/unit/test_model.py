"""model.py: shapes, argument errors, equivariance of the window norms, safe save/load."""

from __future__ import annotations

import pickle
import random
import re
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from tsforecast.errors import ModelLoadError
from tsforecast.training.model import (
    MODEL_FORMAT,
    LSTMForecaster,
    ModelArgs,
    load_model,
    locked_dropout,
    model_to_bytes,
    save_model,
)

B = 5  # batch size used throughout


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**overrides) -> LSTMForecaster:
    kwargs = dict(n_features=2, input_size=12, horizon=4, hidden_size=8, num_layers=2, dropout=0.1)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return LSTMForecaster(**kwargs)


def _randomise_skip(model: LSTMForecaster) -> None:
    """The skip layer starts at zero; give it weights so the tests exercise it."""
    assert model.skip is not None
    with torch.no_grad():
        model.skip.weight.normal_(0.0, 0.3)
        model.skip.bias.normal_(0.0, 0.3)


def _x(model: LSTMForecaster, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, model.args.input_size, model.args.n_features, generator=g)  # (B, L, C)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("L", "H", "C", "cell", "window_norm", "linear_skip"),
    [
        (12, 4, 1, "lstm", "last", True),
        (1, 1, 1, "lstm", "mean_std", True),
        (24, 6, 3, "lstm", "none", False),
        (7, 10, 2, "gru", "mean_std", False),
        (16, 3, 1, "rnn", "last", True),
        (5, 2, 4, "gru", "none", True),
    ],
)
def test_output_shape_is_batch_by_horizon(L, H, C, cell, window_norm, linear_skip):
    model = LSTMForecaster(C, L, H, hidden_size=8, num_layers=2, cell=cell, window_norm=window_norm,
                           linear_skip=linear_skip)  # fmt: skip
    y = model(torch.randn(B, L, C))
    assert y.shape == (B, H)
    assert torch.isfinite(y).all()


def test_single_layer_model_ignores_dropout_between_layers():
    model = _model(num_layers=1, dropout=0.5)
    assert model.dropout == 0.0
    assert model.args.dropout == 0.5


def test_locked_dropout_shares_one_mask_across_time_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(512, 7, 16)  # (B, L, D)
    y = locked_dropout(x, 0.25)
    assert torch.equal(y, y[:, :1, :].expand_as(y))  # same mask at every step
    assert torch.equal(y.unique(), torch.tensor([0.0, 1 / 0.75]))  # dropped, or scaled by 1 / keep
    assert abs((y[:, 0] == 0).float().mean().item() - 0.25) < 0.02
    assert abs(y.mean().item() - 1.0) < 0.03


def test_dropout_acts_between_layers_in_training_only():
    model = _model(num_layers=2, dropout=0.5)
    x = torch.randn(4, model.args.input_size, model.args.n_features)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.equal(a, model(x))


def test_n_params_counts_every_trainable_parameter():
    model = _model()
    assert model.n_params() == sum(p.numel() for p in model.parameters())
    assert _model(linear_skip=False).n_params() == model.n_params() - (12 * 4 + 4)


def test_from_args_accepts_the_dataclass_and_a_dict():
    model = _model(cell="gru", window_norm="mean_std")
    assert LSTMForecaster.from_args(model.args).args == model.args
    assert LSTMForecaster.from_args(asdict(model.args)).args == model.args


# ---------------------------------------------------------------- argument errors


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"hidden_size": 0}, "hidden_size=0 must be a positive integer"),
        ({"num_layers": -1}, "num_layers=-1 must be a positive integer"),
        ({"n_features": 1.5}, "n_features=1.5 must be a positive integer"),
        ({"input_size": True}, "input_size=True must be a positive integer"),
        ({"horizon": "24"}, "horizon='24' must be a positive integer"),
        ({"dropout": 1.0}, "dropout=1.0 must be a number in [0, 1)"),
        ({"dropout": -0.1}, "dropout=-0.1 must be a number in [0, 1)"),
        ({"cell": "lstmx"}, "cell='lstmx' is not supported; choose one of ['gru', 'lstm', 'rnn']"),
        (
            {"window_norm": "max"},
            "window_norm='max' is not supported; choose one of ['none', 'last', 'mean_std']",
        ),
    ],
)
def test_constructor_error_quotes_the_bad_value(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _model(**override)


@pytest.mark.parametrize("shape", [(B, 13, 2), (B, 12, 1), (B, 12), (12, 2), (B, 12, 2, 1)])
def test_forward_rejects_a_wrong_shape_naming_the_expected_one(shape):
    model = _model()
    with pytest.raises(ValueError, match=re.escape(f"expected input of shape (batch, 12, 2), got {shape}")):
        model(torch.randn(*shape))


# ---------------------------------------------------------------- window norms


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("shift", [-25.0, 3.5, 100.0])
def test_window_norm_last_makes_the_forecast_shift_with_the_level(cell, shift):
    model = _model(cell=cell, window_norm="last", linear_skip=True).eval()
    _randomise_skip(model)
    x = _x(model)
    moved = x.clone()
    moved[:, :, 0] += shift  # the target moves by `shift` ...
    moved[:, :, 1] -= 7.0  # ... a covariate by something else: only the target's shift shows up
    with torch.no_grad():
        torch.testing.assert_close(model(moved), model(x) + shift, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("scale", "shift"), [(1.0, 40.0), (10.0, -3.0), (0.05, 2.0), (250.0, 1000.0)])
def test_window_norm_mean_std_makes_the_forecast_follow_level_and_scale(scale, shift):
    model = _model(window_norm="mean_std", linear_skip=True).eval()
    _randomise_skip(model)
    x = _x(model)
    with torch.no_grad():
        expected = model(x) * scale + shift
        got = model(x * scale + shift)
    torch.testing.assert_close(got, expected, atol=1e-4 * max(scale, 1.0), rtol=1e-5)


def test_without_window_norm_the_forecast_does_not_follow_the_level():
    """The control for the two tests above: the property is the norm's doing."""
    model = _model(window_norm="none", linear_skip=True).eval()
    _randomise_skip(model)
    x = _x(model)
    with torch.no_grad():
        gap = (model(x + 10.0) - (model(x) + 10.0)).abs().max()
    assert gap > 1.0


def test_mean_std_survives_a_constant_window():
    model = _model(window_norm="mean_std").eval()
    x = torch.full((B, 12, 2), 3.0)
    with torch.no_grad():
        y = model(x)
    assert torch.isfinite(y).all()


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("window_norm", ["none", "last", "mean_std"])
def test_gradients_reach_every_parameter(cell, window_norm):
    model = _model(cell=cell, window_norm=window_norm, linear_skip=True).train()
    model(_x(model)).pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_a_few_optimiser_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = _model(n_features=1, window_norm="last")
    t = torch.arange(200.0)
    series = torch.sin(t * 2 * torch.pi / 12)
    windows = series.unfold(0, 16, 1)  # (N, L + H)
    x, y = windows[:, :12, None], windows[:, 12:]  # (N, L, 1), (N, H)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_save_load_round_trip_gives_identical_output(tmp_path, cell):
    model = _model(cell=cell, window_norm="mean_std")
    _randomise_skip(model)
    path = tmp_path / "models" / "model.pt"
    save_model(model, path, extra={"scaler": {"mean": 1.5, "std": 2.0}})
    loaded, extra = load_model(path)
    assert not loaded.training, "load_model returns the model in eval mode"
    assert loaded.args == model.args
    assert extra == {"scaler": {"mean": 1.5, "std": 2.0}}
    x = _x(model)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"], "no temp file left behind"


def test_load_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(ModelLoadError, match=r"nope\.pt: model file not found; run `tsforecast train`"):
        load_model(tmp_path / "nope.pt")


class _WritesAMarker:
    """Unpickling this calls Path.touch(marker): what a malicious model file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_load_refuses_a_plain_pickle_and_never_runs_it(tmp_path):
    payload = pickle.dumps(_WritesAMarker(tmp_path / "control"))
    pickle.loads(payload)  # the payload is live: plain unpickling runs it ...
    assert (tmp_path / "control").exists()

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(_WritesAMarker(marker)))
    with pytest.raises(ModelLoadError, match="not a tsforecast model or a damaged file.*it was not loaded"):
        load_model(path)
    assert not marker.exists(), "load_model ran code from the file"  # ... load_model does not


def test_load_refuses_a_torch_file_smuggling_an_object(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"format": MODEL_FORMAT, "args": _WritesAMarker(marker)}, path)
    with pytest.raises(ModelLoadError, match="not a tsforecast model or a damaged file"):
        load_model(path)
    assert not marker.exists()


def test_load_refuses_a_truncated_file(tmp_path):
    good = model_to_bytes(_model())
    path = tmp_path / "model.pt"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelLoadError, match="model.pt: not a tsforecast model or a damaged file"):
        load_model(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        random.Random(0).randbytes(4096),
        b"PK\x03\x04" + random.Random(1).randbytes(500),  # a zip header, then noise
        b"\x80\x02" + b"\x00" * 64,
    ],
    ids=["empty", "random", "zip-header", "pickle-header"],
)
def test_load_refuses_random_bytes(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not a tsforecast model or a damaged file"):
        load_model(path)


@pytest.mark.parametrize(
    "content",
    [b"\x80\x02e.", b"\x80\x02h\x00.", b"\x80\x02J\x00"],
    ids=["pop-from-empty-stack", "memo-miss", "short-int"],
)
def test_load_refuses_malformed_pickle_opcodes(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="not a tsforecast model or a damaged file"):
        load_model(path)


def test_load_refuses_a_torch_file_of_another_format(tmp_path):
    model = _model()
    path = tmp_path / "model.pt"
    torch.save(
        {"format": "someone-else/2", "args": asdict(model.args), "state_dict": model.state_dict()}, path
    )
    with pytest.raises(ModelLoadError, match=re.escape(f"format 'someone-else/2' is not '{MODEL_FORMAT}'")):
        load_model(path)


def test_load_names_an_older_model_format_and_the_fix(tmp_path):
    model = _model()
    path = tmp_path / "model.pt"
    old = "tsforecast.LSTMForecaster/1"
    torch.save({"format": old, "args": asdict(model.args), "state_dict": model.state_dict()}, path)
    with pytest.raises(
        ModelLoadError, match=re.escape(f"format {old!r} was written by another tsforecast")
    ) as e:
        load_model(path)
    assert "retrain with `tsforecast train`" in str(e.value)


def test_load_refuses_a_torch_file_that_is_not_a_dict(tmp_path):
    path = tmp_path / "model.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ModelLoadError, match=re.escape(f"format 'list' is not '{MODEL_FORMAT}'")):
        load_model(path)


def test_load_refuses_weights_that_do_not_match_their_args(tmp_path):
    model = _model()
    args = ModelArgs(**{**asdict(model.args), "hidden_size": 16})
    path = tmp_path / "model.pt"
    torch.save({"format": MODEL_FORMAT, "args": asdict(args), "state_dict": model.state_dict()}, path)
    with pytest.raises(ModelLoadError, match="weights do not match their constructor args"):
        load_model(path)


# ---------------------------------------------------------------- an ensemble is one model


def _ensemble(**kw) -> LSTMForecaster:
    torch.manual_seed(0)
    args = {"n_features": 2, "input_size": 12, "horizon": 3, "hidden_size": 4, "num_layers": 1}
    return LSTMForecaster(**{**args, "member_inputs": (12, 6, 9), **kw})


def test_an_ensemble_trains_every_member_and_serves_their_median():
    model = _ensemble()
    x = torch.randn(5, 12, 2)
    model.train()
    each = model(x)
    assert each.shape == (3, 5, 3)  # (K, B, H): a loss against (B, H) trains each member on its own
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.train()(x).median(dim=0).values)


def test_each_member_reads_only_its_own_lookback():
    model = _ensemble(window_norm="none").eval()
    x = torch.randn(2, 12, 2)
    y = x.clone()
    y[:, :3] += 100.0  # the first 3 steps: outside the 9- and 6-step members' lookbacks
    with torch.no_grad():
        a, b = model.members[1](x), model.members[1](y)
        torch.testing.assert_close(a, b)
        assert not torch.allclose(model.members[0](x), model.members[0](y))


def test_an_ensemble_round_trips_through_the_model_file(tmp_path):
    model = _ensemble().eval()
    save_model(model, tmp_path / "m.pt", {"k": 1})
    loaded, extra = load_model(tmp_path / "m.pt")
    assert loaded.args.member_inputs == (12, 6, 9) and loaded.n_members == 3 and extra == {"k": 1}
    x = torch.randn(4, 12, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_members_start_from_different_weights():
    model = _ensemble(member_inputs=(12, 12))
    a, b = model.members[0].head.weight, model.members[1].head.weight
    assert not torch.equal(a, b)


def test_a_member_input_larger_than_the_window_names_both():
    with pytest.raises(ValueError, match=r"member_inputs\[1\]=20 exceeds input_size=12"):
        _ensemble(member_inputs=(12, 20))
