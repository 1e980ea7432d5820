"""The forecaster: a plain ``nn.Module`` plus safe save/load of weights and constructor args.

``LSTMForecaster`` maps an input window (batch, L, 1 + covariates) to the next H
target values (batch, H) in one shot (direct multi-step). Three parts:

* per-window normalisation (``window_norm``): subtract the window's last value
  (``last``) or its mean and divide by its std (``mean_std``) per channel, and add it
  back on output, so level shifts between train and test do not confuse the network;
* a stacked recurrent encoder (``nn.LSTM`` layers by default; ``gru`` and ``rnn`` for
  comparison) whose last hidden state feeds a linear head to all H steps. Between layers
  sits *locked* (variational) dropout, Gal & Ghahramani 2016: one mask per sequence,
  shared by every time step, the standard dropout for RNNs (AWD-LSTM's ``LockedDropout``).
  It draws B x hidden random numbers per layer instead of the B x L x hidden that
  ``nn.LSTM(dropout=...)`` draws, which was 13-17 % of a CPU training step at L=96;
* an optional linear highway from the normalised target window to the H outputs
  (``linear_skip``, the autoregressive component of LSTNet, Lai et al. 2018): it lets
  the model reuse a seasonal lag anywhere inside the window, and the recurrent part
  learns the nonlinear rest.

**An ensemble is one model.** With ``member_inputs`` of K > 1 input sizes the module holds K
independent members (each its own encoder, head and highway, drawn one after the other from
the seeded RNG, so they start from different weights), member k reading the last
``member_inputs[k]`` steps of the window: the recipe of N-BEATS and ES-RNN on M4, members
differing in initialisation and input size. In training mode the forward pass returns every
member's forecast, (K, B, H), so a loss against (B, H) targets broadcasts to the mean of the
members' own losses and each member learns on its own; in eval mode it returns their median,
(B, H). One file, one set of constructor args, one pyfunc: nothing downstream knows K.
"""

from __future__ import annotations

import io
import pickle
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tsforecast.errors import ModelLoadError

MODEL_FORMAT = "tsforecast.LSTMForecaster/3"  # /3: members (an ensemble of K >= 1), the model card
CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
NORMS = ("none", "last", "mean_std")


@dataclass(frozen=True)
class ModelArgs:
    """Constructor arguments, saved beside the weights."""

    n_features: int  # 1 (target) + number of covariates
    input_size: int  # L, steps in the input window
    horizon: int  # H, steps forecast at once
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    window_norm: Literal["none", "last", "mean_std"] = "last"
    linear_skip: bool = True
    member_inputs: tuple[int, ...] = ()  # an ensemble: each member's input size (<= input_size); (): one


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")


def locked_dropout(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dropout with one mask per sequence, shared across time: x (B, L, D) -> (B, L, D)."""
    keep = 1.0 - p
    mask = torch.empty((x.shape[0], 1, x.shape[2]), dtype=x.dtype, device=x.device)
    mask.bernoulli_(keep, generator=generator)
    return x * mask.div_(keep)  # (B, 1, D) broadcast over L


class _Member(nn.Module):
    """One recurrent forecaster: normalised (B, L_k, C) -> (B, H), before the window's level returns."""

    def __init__(self, a: ModelArgs, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        # One single-layer module per level, so dropout between them can be locked over time.
        self.rnn = nn.ModuleList(
            CELLS[a.cell](
                input_size=a.n_features if k == 0 else a.hidden_size,
                hidden_size=a.hidden_size,
                batch_first=True,
            )
            for k in range(a.num_layers)
        )
        self.dropout = a.dropout if a.num_layers > 1 else 0.0  # between layers only, as nn.LSTM does
        self.head = nn.Linear(a.hidden_size, a.horizon)
        self.skip = nn.Linear(input_size, a.horizon) if a.linear_skip else None
        if self.skip is not None:  # start from "no change", let training find the lags
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x[:, -self.input_size :]  # (B, L_k, C): the member's own lookback
        out = x
        for k, layer in enumerate(self.rnn):
            if k > 0 and self.training and self.dropout > 0:
                out = locked_dropout(out, self.dropout, generator)
            out, _ = layer(out)  # (B, L_k, hidden)
        y = self.head(out[:, -1])  # (B, H)
        if self.skip is not None:
            y = y + self.skip(x[:, :, 0])  # (B, L_k) -> (B, H)
        return y


class LSTMForecaster(nn.Module):
    """Direct multi-step recurrent forecaster: (B, L, C) -> (B, H); K members -> their median."""

    def __init__(
        self,
        n_features: int,
        input_size: int,
        horizon: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.1,
        cell: str = "lstm",
        window_norm: str = "last",
        linear_skip: bool = True,
        member_inputs: tuple[int, ...] | list[int] = (),
    ) -> None:
        super().__init__()
        for name, value in (
            ("n_features", n_features),
            ("input_size", input_size),
            ("horizon", horizon),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        ):
            _check_positive_int(name, value)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} must be a number in [0, 1)")
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} is not supported; choose one of {sorted(CELLS)}")
        if window_norm not in NORMS:
            raise ValueError(f"window_norm={window_norm!r} is not supported; choose one of {list(NORMS)}")
        inputs = tuple(member_inputs)
        for k, size in enumerate(inputs):
            _check_positive_int(f"member_inputs[{k}]", size)
            if size > input_size:
                raise ValueError(f"member_inputs[{k}]={size} exceeds input_size={input_size}")
        self.args = ModelArgs(
            n_features=n_features,
            input_size=input_size,
            horizon=horizon,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=float(dropout),
            cell=cell,  # type: ignore[arg-type]
            window_norm=window_norm,  # type: ignore[arg-type]
            linear_skip=bool(linear_skip),
            member_inputs=inputs if len(inputs) > 1 else (),
        )
        self.members = nn.ModuleList(_Member(self.args, size) for size in (inputs or (input_size,)))

    @property
    def n_members(self) -> int:
        return len(self.members)

    # The parts of the first member (the only one unless the model is an ensemble).
    @property
    def rnn(self) -> nn.ModuleList:
        return self.members[0].rnn

    @property
    def head(self) -> nn.Linear:
        return self.members[0].head

    @property
    def skip(self) -> nn.Linear | None:
        return self.members[0].skip

    @property
    def dropout(self) -> float:
        return self.members[0].dropout

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, L, C) with the target in channel 0 -> (B, H); (K, B, H) for K members in training.

        ``generator`` draws the dropout masks in training (default: torch's global RNG); the
        sharded CPU training step gives each thread its own, so runs stay reproducible.
        """
        if x.ndim != 3 or x.shape[1] != self.args.input_size or x.shape[2] != self.args.n_features:
            raise ValueError(
                f"expected input of shape (batch, {self.args.input_size}, {self.args.n_features}), "
                f"got {tuple(x.shape)}"
            )
        norm = self.args.window_norm
        if norm == "last":
            loc = x[:, -1:, :]  # (B, 1, C)
            x = x - loc
            scale = None
        elif norm == "mean_std":
            loc = x.mean(dim=1, keepdim=True)  # (B, 1, C)
            scale = x.std(dim=1, keepdim=True, unbiased=False).clamp_min(1e-5)  # (B, 1, C)
            x = (x - loc) / scale
        else:
            loc = scale = None
        y = torch.stack([m(x, generator) for m in self.members])  # (K, B, H)
        if scale is not None:
            y = y * scale[None, :, :, 0]
        if loc is not None:
            y = y + loc[None, :, :, 0]
        if self.n_members == 1:
            return y[0]  # (B, H)
        return (
            y if self.training else y.median(dim=0).values if self.n_members % 2 else y.quantile(0.5, dim=0)
        )

    @classmethod
    def from_args(cls, args: ModelArgs | dict[str, Any]) -> LSTMForecaster:
        a = (
            args
            if isinstance(args, ModelArgs)
            else ModelArgs(**{**args, "member_inputs": tuple(args.get("member_inputs", ()))})
        )
        return cls(**asdict(a))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def model_to_bytes(model: LSTMForecaster, extra: dict[str, Any] | None = None) -> bytes:
    """Serialise weights + constructor args (+ JSON-able ``extra``) as a torch zip file."""
    buf = io.BytesIO()
    payload = {
        "format": MODEL_FORMAT,
        "args": asdict(model.args),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    torch.save(payload, buf)
    return buf.getvalue()


def save_model(model: LSTMForecaster, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``model_to_bytes`` to ``path`` atomically."""
    from tsforecast.io import atomic_file

    with atomic_file(path, "wb") as fh:
        fh.write(model_to_bytes(model, extra))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LSTMForecaster, dict]:
    """Load a model saved by :func:`save_model`; anything else is refused, never executed.

    ``torch.load(weights_only=True)`` only unpickles tensors and plain containers, so a
    crafted pickle cannot run code; a truncated or foreign file raises ModelLoadError.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found; run `tsforecast train` (or `dvc repro`)")
    try:
        with warnings.catch_warnings():  # a foreign file makes torch warn about its pickle protocol
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # weights_only: a foreign file fails in many ways but never runs code
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        detail = (
            "it holds Python objects, not only tensors"
            if isinstance(e, pickle.UnpicklingError)
            else first[:200]
        )
        raise ModelLoadError(
            f"{path}: not a tsforecast model or a damaged file ({detail}); "
            "it was not loaded - retrain with `tsforecast train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        family = MODEL_FORMAT.rsplit("/", 1)[0] + "/"
        if isinstance(found, str) and found.startswith(family):
            raise ModelLoadError(
                f"{path}: format {found!r} was written by another tsforecast version (this one reads "
                f"{MODEL_FORMAT!r}); retrain with `tsforecast train` or `dvc repro`"
            )
        raise ModelLoadError(f"{path}: format {found!r} is not {MODEL_FORMAT!r}; not a tsforecast model")
    try:
        model = LSTMForecaster.from_args(payload["args"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelLoadError(f"{path}: weights do not match their constructor args ({first})") from None
    model.eval()
    return model, payload.get("extra", {})
