"""lstm_cell.py: the gate-by-gate reference computes what torch.nn.LSTM computes."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from tsforecast.teaching.lstm_cell import LSTMCell, ReferenceLSTM, copy_from_torch_lstm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torch_lstm(D: int, H: int, layers: int, seed: int = 0) -> nn.LSTM:
    torch.manual_seed(seed)
    return nn.LSTM(D, H, num_layers=layers, batch_first=True).eval()


SIZES = [(1, 8, 1), (3, 16, 2), (5, 4, 3)]  # (D, H, layers)


@pytest.mark.parametrize(("D", "H", "layers"), SIZES)
def test_reference_matches_torch_lstm_from_a_zero_state(D, H, layers):
    lstm = _torch_lstm(D, H, layers)
    ref = ReferenceLSTM.from_torch(lstm)
    x = torch.randn(4, 25, D, generator=torch.Generator().manual_seed(1))  # (B, T, D)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x)
        ref_out, (ref_h, ref_c) = ref(x)
    assert ref_out.shape == (4, 25, H) and ref_h.shape == ref_c.shape == (layers, 4, H)
    torch.testing.assert_close(ref_out, out, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_h, h_n, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_c, c_n, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("D", "H", "layers"), SIZES)
def test_reference_matches_torch_lstm_from_a_given_state(D, H, layers):
    lstm = _torch_lstm(D, H, layers, seed=3)
    ref = ReferenceLSTM.from_torch(lstm)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 10, D, generator=g)
    h0, c0 = torch.randn(layers, 2, H, generator=g), torch.randn(layers, 2, H, generator=g)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x, (h0, c0))
        ref_out, (ref_h, ref_c) = ref(x, (h0, c0))
    torch.testing.assert_close(ref_out, out, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_h, h_n, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_c, c_n, atol=1e-5, rtol=0)


def test_one_cell_from_torch_steps_like_the_torch_layer():
    lstm = _torch_lstm(2, 6, 2)
    cells = [LSTMCell.from_torch(lstm, layer=k) for k in range(2)]
    assert (cells[0].input_size, cells[1].input_size) == (2, 6)
    x = torch.randn(3, 7, 2)
    with torch.no_grad():
        out, _ = lstm(x)
        state0 = state1 = None
        for t in range(7):
            state0 = cells[0](x[:, t], state0)
            state1 = cells[1](state0[0], state1)
            torch.testing.assert_close(state1[0], out[:, t], atol=1e-5, rtol=0)


def test_reference_matches_torch_in_float64_to_rounding():
    lstm = _torch_lstm(3, 8, 1).double()
    ref = ReferenceLSTM.from_torch(lstm)
    assert ref.cells[0].W_f.dtype == torch.float64
    x = torch.randn(2, 30, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ref(x)[0], lstm(x)[0], atol=1e-12, rtol=0)


def test_copy_reads_torch_gate_order_i_f_g_o():
    """Rows H:2H of torch's stacked weights are the forget gate, and so on."""
    lstm = _torch_lstm(2, 3, 1)
    cell = copy_from_torch_lstm(LSTMCell(2, 3), lstm)
    H = 3
    for k, gate in enumerate("ifgo"):
        rows = slice(k * H, (k + 1) * H)
        assert torch.equal(getattr(cell, f"W_{gate}"), lstm.weight_ih_l0[rows])
        assert torch.equal(getattr(cell, f"U_{gate}"), lstm.weight_hh_l0[rows])
        assert torch.equal(getattr(cell, f"b_{gate}"), lstm.bias_ih_l0[rows] + lstm.bias_hh_l0[rows])


def test_torch_lstm_without_bias_copies_zero_biases():
    torch.manual_seed(0)
    lstm = nn.LSTM(2, 4, batch_first=True, bias=False)
    ref = ReferenceLSTM.from_torch(lstm)
    assert all(torch.equal(getattr(ref.cells[0], f"b_{g}"), torch.zeros(4)) for g in "ifgo")
    x = torch.randn(2, 5, 2)
    with torch.no_grad():
        torch.testing.assert_close(ref(x)[0], lstm(x)[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- the gate equations


def _cell_with_gate_biases(f: float, i: float, D: int = 2, H: int = 4) -> LSTMCell:
    torch.manual_seed(0)
    cell = LSTMCell(D, H)
    with torch.no_grad():
        cell.b_f.fill_(f)
        cell.b_i.fill_(i)
    return cell


def test_open_forget_gate_and_closed_input_gate_carry_the_memory_unchanged():
    cell = _cell_with_gate_biases(f=+50.0, i=-50.0)  # f_t = 1, i_t = 0
    c0 = torch.randn(3, 4)
    state = (torch.randn(3, 4), c0)
    with torch.no_grad():
        for _ in range(100):
            x, h_prev = torch.randn(3, 2), state[0]
            h, c = state = cell(x, state)
        gates = cell.gates(x, h_prev)
    torch.testing.assert_close(c, c0, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, gates.o * torch.tanh(c0), atol=1e-6, rtol=0)  # it still shows the memory


def test_closed_forget_gate_erases_the_memory():
    cell = _cell_with_gate_biases(f=-50.0, i=0.0)  # f_t = 0: c_t = i_t * g_t
    x, h0, c0 = torch.randn(3, 2), torch.randn(3, 4), 1e3 * torch.randn(3, 4)
    with torch.no_grad():
        _, c = cell(x, (h0, c0))
        gates = cell.gates(x, h0)
    torch.testing.assert_close(c, gates.i * gates.g, atol=1e-6, rtol=0)


def test_step_follows_the_textbook_equations():
    cell = LSTMCell(3, 5)
    x, h0, c0 = torch.randn(2, 3), torch.randn(2, 5), torch.randn(2, 5)
    with torch.no_grad():
        h, c = cell(x, (h0, c0))
        gates = cell.gates(x, h0)
    assert ((gates.f > 0) & (gates.f < 1)).all() and ((gates.g > -1) & (gates.g < 1)).all()
    torch.testing.assert_close(c, gates.f * c0 + gates.i * gates.g)
    torch.testing.assert_close(h, gates.o * torch.tanh(c))
    expected_f = torch.sigmoid(x @ cell.W_f.T + h0 @ cell.U_f.T + cell.b_f)
    torch.testing.assert_close(gates.f, expected_f)


# ---------------------------------------------------------------- gradients


def test_input_gradients_match_torch_autograd():
    lstm = _torch_lstm(2, 8, 2)
    ref = ReferenceLSTM.from_torch(lstm)
    x = torch.randn(3, 15, 2)
    x_torch, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    lstm(x_torch)[0][:, -1].sum().backward()
    ref(x_ref)[0][:, -1].sum().backward()
    torch.testing.assert_close(x_ref.grad, x_torch.grad, atol=1e-5, rtol=1e-4)


def test_gradients_reach_every_parameter_of_every_layer():
    ref = ReferenceLSTM(2, 6, num_layers=2)
    out, (h_n, c_n) = ref(torch.randn(3, 8, 2))
    (out.sum() + c_n.sum()).backward()
    for name, p in ref.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_open_forget_gate_passes_the_gradient_back_undamped():
    """The constant error carousel: with f_t = 1 and i_t = 0, dc_T/dc_0 = prod f_t = 1."""
    cell = _cell_with_gate_biases(f=+50.0, i=-50.0)
    c0 = torch.randn(3, 4, requires_grad=True)
    state = (torch.zeros(3, 4), c0)
    for _ in range(200):
        state = cell(torch.randn(3, 2), state)
    state[1].sum().backward()
    torch.testing.assert_close(c0.grad, torch.ones(3, 4), atol=1e-5, rtol=0)


def test_half_open_forget_gate_halves_the_gradient_each_step():
    """With no recurrent weights and f_t = σ(0) = 0.5, dc_T/dc_0 = 0.5**T exactly."""
    cell = _cell_with_gate_biases(f=0.0, i=0.0)
    with torch.no_grad():
        for name in ("W_f", "U_f", "U_i", "U_g", "U_o"):
            getattr(cell, name).zero_()
    c0 = torch.randn(2, 4, requires_grad=True)
    state = (torch.zeros(2, 4), c0)
    for _ in range(20):
        state = cell(torch.randn(2, 2), state)
    state[1].sum().backward()
    torch.testing.assert_close(c0.grad, torch.full((2, 4), 0.5**20), rtol=1e-4, atol=0)


# ---------------------------------------------------------------- argument errors


def test_cell_rejects_a_bad_size_naming_it():
    with pytest.raises(ValueError, match=re.escape("hidden_size=0 must be a positive integer")):
        LSTMCell(3, 0)


def test_cell_rejects_a_wrong_input_shape_naming_the_expected_one():
    with pytest.raises(ValueError, match=re.escape("expected x_t of shape (batch, 3), got (2, 4)")):
        LSTMCell(3, 5)(torch.randn(2, 4))


def test_reference_rejects_a_wrong_input_shape():
    with pytest.raises(ValueError, match=re.escape("expected input of shape (batch, steps, 3), got (2, 4)")):
        ReferenceLSTM(3, 5)(torch.randn(2, 4))


def test_copy_refuses_a_missing_layer_and_a_mismatched_cell():
    lstm = _torch_lstm(2, 4, 2)
    with pytest.raises(ValueError, match=re.escape("layer=2 must be in [0, 1] for this LSTM")):
        copy_from_torch_lstm(LSTMCell(4, 4), lstm, layer=2)
    with pytest.raises(ValueError, match="layer 1 of this LSTM needs input_size=4, hidden_size=4"):
        copy_from_torch_lstm(LSTMCell(2, 4), lstm, layer=1)


def test_from_torch_refuses_a_bidirectional_lstm():
    with pytest.raises(ValueError, match="bidirectional=True"):
        ReferenceLSTM.from_torch(nn.LSTM(2, 4, bidirectional=True))
    with pytest.raises(TypeError, match="expected a torch.nn.LSTM, got GRU"):
        ReferenceLSTM.from_torch(nn.GRU(2, 4))
