r"""A reference LSTM, written gate by gate from the textbook equations.

This module is for reading. The forecaster (``model.py``) runs torch's fused
``nn.LSTM``; the classes here compute exactly the same function, one equation per
line, and ``tests/unit/test_lstm_cell.py`` checks that they agree to 1e-5.

The equations
-------------
One time step ``t``, for a batch of B sequences with D input features and H hidden
units (the "size" of the memory)::

    x_t      (B, D)   the input at step t
    h_{t-1}  (B, H)   the previous hidden state: what the cell showed at the last step
    c_{t-1}  (B, H)   the previous cell state: the memory itself

    f_t = σ(W_f x_t + U_f h_{t-1} + b_f)      forget gate: how much of each memory unit to keep
    i_t = σ(W_i x_t + U_i h_{t-1} + b_i)      input gate: how much of the candidate to write
    g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)   candidate: what could be written, in (-1, 1)
    o_t = σ(W_o x_t + U_o h_{t-1} + b_o)      output gate: how much of the memory to show
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t           new memory: keep some of the old, add some new
    h_t = o_t ⊙ tanh(c_t)                     new hidden state (the cell's output)

σ is the logistic sigmoid, so every gate is a vector of numbers between 0 (closed) and
1 (open), one per hidden unit; ⊙ multiplies element by element. Each gate has its own
input weights W (H, D), recurrent weights U (H, H) and bias b (H,): an LSTM layer has
four times the parameters of a plain RNN layer of the same width.

Why a plain RNN forgets
-----------------------
A plain ("Elman") RNN has one state and one update, ``h_t = tanh(a_t)`` with
``a_t = W x_t + W_hh h_{t-1} + b``. To learn from an input k steps back, backpropagation
carries the gradient of the loss L back one step at a time, and the chain rule
multiplies it by the same kind of matrix at every step::

    ∂L/∂h_{t-1} = W_hhᵀ diag(tanh'(a_t)) ∂L/∂h_t
    ∂L/∂h_{t-k} = [W_hhᵀ diag(tanh'(a_t))] ··· [W_hhᵀ diag(tanh'(a_{t-k+1}))] ∂L/∂h_t

tanh' is at most 1 (and much smaller where tanh saturates), so when the largest
singular value of W_hh is below 1 every factor shrinks the gradient, and k factors
shrink it geometrically, like s^k for some s < 1: after a few dozen steps nothing is
left (Hochreiter 1991; Bengio, Simard & Frasconi 1994). The weights that should link
an output to an input far back get no training signal: the gradient *vanishes*.
(Above 1 it can *explode* instead; clipping the gradient norm handles that, but no
such simple trick fixes vanishing.)

Why the LSTM remembers
----------------------
The LSTM (Hochreiter & Schmidhuber 1997; forget gate: Gers, Schmidhuber & Cummins
2000) keeps its memory in the cell state, which is updated by *addition*. The gates
read h_{t-1}, not c_{t-1}, so along the memory path the derivative is simply::

    ∂c_t/∂c_{t-1} = diag(f_t)        and over k steps   ∏_{j<k} diag(f_{t-j})

No weight matrix, no tanh' — only the forget gate, which the network itself controls
per unit and per step. Where it holds f close to 1, the gradient reaches inputs far
back nearly undamped (the original paper's "constant error carousel"); where it sets
f near 0 the unit forgets on purpose. (The other paths, through h_{t-1} and the
gates, behave like the plain RNN's and fade; the memory path is the one that
carries.) An *untrained* LSTM with biases near 0 has f ≈ σ(0) = 0.5 and forgets about
as fast as an RNN; that is why the forget-gate bias is often initialised to +1
(Gers et al. 2000; Jozefowicz, Zaremba & Sutskever 2015). ``tsforecast explain
gradients`` plots the gradient reaching each input step for both networks.

torch.nn.LSTM's layout
----------------------
torch keeps the four gates of layer k in two stacked matrices, in the order i, f, g, o::

    weight_ih_l{k}: (4H, D) = [W_i; W_f; W_g; W_o]    (D = input size for k = 0, else H)
    weight_hh_l{k}: (4H, H) = [U_i; U_f; U_g; U_o]
    bias_ih_l{k}, bias_hh_l{k}: (4H,) each; only their sum b = b_ih + b_hh matters

:func:`copy_from_torch_lstm` and the ``from_torch`` class methods unpack them.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import nn

__all__ = ["Gates", "LSTMCell", "ReferenceLSTM", "copy_from_torch_lstm"]


class Gates(NamedTuple):
    """The four gate activations of one step, each (B, H)."""

    f: torch.Tensor  # forget gate, in (0, 1)
    i: torch.Tensor  # input gate, in (0, 1)
    g: torch.Tensor  # candidate, in (-1, 1)
    o: torch.Tensor  # output gate, in (0, 1)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer")


class LSTMCell(nn.Module):
    """One LSTM step, gate by gate: x_t (B, D), (h_{t-1}, c_{t-1}) (B, H) each -> (h_t, c_t)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        _check_positive_int("input_size", input_size)
        _check_positive_int("hidden_size", hidden_size)
        self.input_size = D = input_size
        self.hidden_size = H = hidden_size

        # forget gate  f_t = σ(W_f x_t + U_f h_{t-1} + b_f)
        self.W_f = nn.Parameter(torch.empty(H, D))
        self.U_f = nn.Parameter(torch.empty(H, H))
        self.b_f = nn.Parameter(torch.empty(H))
        # input gate  i_t = σ(W_i x_t + U_i h_{t-1} + b_i)
        self.W_i = nn.Parameter(torch.empty(H, D))
        self.U_i = nn.Parameter(torch.empty(H, H))
        self.b_i = nn.Parameter(torch.empty(H))
        # candidate  g_t = tanh(W_g x_t + U_g h_{t-1} + b_g)
        self.W_g = nn.Parameter(torch.empty(H, D))
        self.U_g = nn.Parameter(torch.empty(H, H))
        self.b_g = nn.Parameter(torch.empty(H))
        # output gate  o_t = σ(W_o x_t + U_o h_{t-1} + b_o)
        self.W_o = nn.Parameter(torch.empty(H, D))
        self.U_o = nn.Parameter(torch.empty(H, H))
        self.b_o = nn.Parameter(torch.empty(H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's init: every weight and bias uniform in ±1/sqrt(H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def zero_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0) = zeros, each (B, H), on ``like``'s device and dtype."""
        h0 = like.new_zeros(batch, self.hidden_size)  # (B, H)
        return h0, h0.clone()

    def gates(self, x_t: torch.Tensor, h_prev: torch.Tensor) -> Gates:
        """The four gates for input x_t (B, D) and previous hidden state h_prev (B, H).

        A batch holds its vectors as rows, so ``W x`` is written ``x @ W.T``.
        """
        f_t = torch.sigmoid(x_t @ self.W_f.T + h_prev @ self.U_f.T + self.b_f)  # (B, H)
        i_t = torch.sigmoid(x_t @ self.W_i.T + h_prev @ self.U_i.T + self.b_i)  # (B, H)
        g_t = torch.tanh(x_t @ self.W_g.T + h_prev @ self.U_g.T + self.b_g)  # (B, H)
        o_t = torch.sigmoid(x_t @ self.W_o.T + h_prev @ self.U_o.T + self.b_o)  # (B, H)
        return Gates(f=f_t, i=i_t, g=g_t, o=o_t)

    def forward(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x_t (B, D) and state (h_{t-1}, c_{t-1}) (zeros when None) -> (h_t, c_t)."""
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ValueError(f"expected x_t of shape (batch, {self.input_size}), got {tuple(x_t.shape)}")
        h_prev, c_prev = state if state is not None else self.zero_state(x_t.shape[0], x_t)
        expected = (x_t.shape[0], self.hidden_size)
        if tuple(h_prev.shape) != expected or tuple(c_prev.shape) != expected:
            raise ValueError(
                f"expected h and c of shape {expected}, got {tuple(h_prev.shape)} and {tuple(c_prev.shape)}"
            )
        f_t, i_t, g_t, o_t = self.gates(x_t, h_prev)
        c_t = f_t * c_prev + i_t * g_t  # (B, H): keep a share of the memory, add a share of the new
        h_t = o_t * torch.tanh(c_t)  # (B, H): show a share of the squashed memory
        return h_t, c_t

    @classmethod
    def from_torch(cls, lstm: nn.LSTM, layer: int = 0) -> LSTMCell:
        """A cell holding a copy of layer ``layer`` of ``lstm``'s weights (same dtype and device)."""
        _check_lstm(lstm)
        input_size = lstm.input_size if layer == 0 else lstm.hidden_size
        weight = lstm.weight_hh_l0
        cell = cls(input_size, lstm.hidden_size).to(dtype=weight.dtype, device=weight.device)
        return copy_from_torch_lstm(cell, lstm, layer)


def _check_lstm(lstm: Any) -> None:
    if not isinstance(lstm, nn.LSTM):
        raise TypeError(f"expected a torch.nn.LSTM, got {type(lstm).__name__}")
    if lstm.bidirectional or lstm.proj_size:
        raise ValueError(
            f"only unidirectional LSTMs without projection are supported "
            f"(got bidirectional={lstm.bidirectional}, proj_size={lstm.proj_size})"
        )


def copy_from_torch_lstm(cell: LSTMCell, lstm: nn.LSTM, layer: int = 0) -> LSTMCell:
    """Copy layer ``layer`` of ``lstm`` into ``cell`` (in place) and return ``cell``.

    torch stacks the gates as [i; f; g; o] along dim 0 and has two biases per gate;
    the reference has one, their sum.
    """
    _check_lstm(lstm)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < lstm.num_layers:
        raise ValueError(f"layer={layer!r} must be in [0, {lstm.num_layers - 1}] for this LSTM")
    H = lstm.hidden_size
    D = lstm.input_size if layer == 0 else H
    if (cell.input_size, cell.hidden_size) != (D, H):
        raise ValueError(
            f"cell has input_size={cell.input_size}, hidden_size={cell.hidden_size}; "
            f"layer {layer} of this LSTM needs input_size={D}, hidden_size={H}"
        )
    w_ih = getattr(lstm, f"weight_ih_l{layer}")  # (4H, D)
    w_hh = getattr(lstm, f"weight_hh_l{layer}")  # (4H, H)
    if lstm.bias:
        b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")  # (4H,)
    else:
        b = w_ih.new_zeros(4 * H)
    W_i, W_f, W_g, W_o = w_ih.chunk(4, dim=0)  # each (H, D)
    U_i, U_f, U_g, U_o = w_hh.chunk(4, dim=0)  # each (H, H)
    b_i, b_f, b_g, b_o = b.chunk(4, dim=0)  # each (H,)
    with torch.no_grad():
        for mine, theirs in (
            (cell.W_i, W_i), (cell.U_i, U_i), (cell.b_i, b_i),
            (cell.W_f, W_f), (cell.U_f, U_f), (cell.b_f, b_f),
            (cell.W_g, W_g), (cell.U_g, U_g), (cell.b_g, b_g),
            (cell.W_o, W_o), (cell.U_o, U_o), (cell.b_o, b_o),
        ):  # fmt: skip
            mine.copy_(theirs)
    return cell


class ReferenceLSTM(nn.Module):
    """``num_layers`` LSTMCells unrolled over time, batch first, like ``nn.LSTM(batch_first=True)``.

    (B, T, D) and optional (h_0, c_0) (num_layers, B, H) each
    -> output (B, T, H) = the last layer's h_t at every step, and (h_n, c_n) (num_layers, B, H) each.
    There is no dropout between layers (torch's matches it in eval mode).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        _check_positive_int("num_layers", num_layers)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        # layer 0 reads the input; every further layer reads the h_t sequence of the one below
        self.cells = nn.ModuleList(
            LSTMCell(input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers)
        )

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if x.ndim != 3 or x.shape[2] != self.input_size:
            expected = f"(batch, steps, {self.input_size})"
            raise ValueError(f"expected input of shape {expected}, got {tuple(x.shape)}")
        B, T, _ = x.shape
        if state is None:
            h0 = x.new_zeros(self.num_layers, B, self.hidden_size)  # (layers, B, H)
            state = (h0, h0.clone())
        h0, c0 = state
        layer_input = x  # (B, T, D)
        h_n, c_n = [], []
        for k, cell in enumerate(self.cells):
            h, c = h0[k], c0[k]  # (B, H) each
            outputs = []
            for t in range(T):  # the recurrence: step t needs step t-1, so it is a plain loop
                h, c = cell(layer_input[:, t], (h, c))  # (B, H) each
                outputs.append(h)
            layer_input = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            h_n.append(h)
            c_n.append(c)
        return layer_input, (torch.stack(h_n), torch.stack(c_n))  # (B, T, H), (layers, B, H) x 2

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> ReferenceLSTM:
        """A reference copy of every layer of ``lstm`` (same dtype and device).

        The reference is always batch first, whatever ``lstm.batch_first`` says.
        """
        _check_lstm(lstm)
        weight = lstm.weight_hh_l0
        ref = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers)
        ref = ref.to(dtype=weight.dtype, device=weight.device)
        for k, cell in enumerate(ref.cells):
            copy_from_torch_lstm(cell, lstm, k)
        return ref
