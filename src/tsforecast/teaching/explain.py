"""Illustrations of how the model works: ``tsforecast explain <what>``.

``run_explain_gradients`` shows why the forecaster is an LSTM and not a plain RNN:
it backpropagates from the last output of untrained networks and measures how much
gradient reaches each input step (plots/gradients.png, plots/gradients.csv). The
plain RNN's gradient vanishes exponentially; the LSTM's decays at a rate set by its
forget gate, and reaches far back once that gate is open. ``lstm_cell.py`` explains
the equations.

An untrained LSTM with PyTorch's default init has every bias near 0, so its forget
gate sits at σ(0) = 0.5 and it forgets nearly as fast as the RNN. The figure therefore
shows the LSTM three times: default init, the usual forget-gate bias of +1 (Gers et
al. 2000; Jozefowicz et al. 2015), and +3 (f ≈ 0.95, standing in for a trained LSTM
that holds its memory). The ``lstm`` column and ratio are the +1 one.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from tsforecast.errors import ConfigError
from tsforecast.io import atomic_file
from tsforecast.paths import Paths

log = logging.getLogger(__name__)

BATCH = 32  # sequences per random batch
N_TRIALS = 8  # random (initialisation, batch) pairs averaged per curve
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32, ~1.2e-38

# CSV column -> (legend label, forget-gate bias or None for torch's default init)
LSTM_VARIANTS: dict[str, tuple[str, float | None]] = {
    "lstm": ("LSTM, forget-gate bias +1 (the usual init): f ≈ σ(1) ≈ 0.73", 1.0),
    "lstm_default_init": ("LSTM, PyTorch default init: forget bias ≈ 0, f ≈ σ(0) = 0.5", None),
    "lstm_forget_bias_3": ("LSTM, forget-gate bias +3: f ≈ σ(3) ≈ 0.95, a gate that remembers", 3.0),
}
RNN_LABEL = "plain RNN (tanh)"


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")


def _lstm_with_forget_bias(hidden_size: int, forget_bias: float | None) -> nn.LSTM:
    lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, num_layers=1, batch_first=True)
    if forget_bias is not None:
        H = hidden_size
        with torch.no_grad():  # torch's gate order is i, f, g, o: rows H:2H are the forget gate
            lstm.bias_ih_l0[H : 2 * H] = forget_bias
            lstm.bias_hh_l0[H : 2 * H] = 0.0
    return lstm


@contextlib.contextmanager
def _num_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _gradient_reaching_inputs(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """x (B, T, 1) -> (T,): ‖∂ sum(h_T) / ∂x_{T-k}‖ over batch and feature, index k = steps back."""
    x = x.detach().clone().requires_grad_(True)
    out, _ = net(x)  # (B, T, H)
    out[:, -1].sum().backward()  # a scalar of the LAST output step only
    assert x.grad is not None
    norms = x.grad.norm(dim=(0, 2))  # (T,), input step t = 0 .. T-1
    return norms.flip(0).numpy()  # (T,), k = T-1-t steps before the output


def gradient_curves(seq_len: int, hidden_size: int, seed: int) -> dict[str, np.ndarray]:
    """Relative gradient norm per step back (1 at k = 0), geometric mean over N_TRIALS.

    Computed in float64: over a couple of hundred steps the RNN's gradient falls below
    the smallest float32 number and would read as exactly 0.
    """
    builders: dict[str, Callable[[], nn.Module]] = {
        "rnn": lambda: nn.RNN(1, hidden_size, num_layers=1, nonlinearity="tanh", batch_first=True)
    }
    for name, (_, bias) in LSTM_VARIANTS.items():
        builders[name] = lambda bias=bias: _lstm_with_forget_bias(hidden_size, bias)
    logs: dict[str, list[np.ndarray]] = {name: [] for name in builders}
    tiny = np.finfo(np.float64).tiny
    # leave the caller's RNG state alone; the ops are tiny, and several threads only
    # contend (10-100x slower when another process is busy on the same cores)
    with torch.random.fork_rng(devices=[]), _num_threads(1):
        for trial in range(N_TRIALS):
            torch.manual_seed(seed * N_TRIALS + trial)
            x = torch.randn(BATCH, seq_len, 1, dtype=torch.float64)  # (B, T, 1)
            for name, build in builders.items():
                g = _gradient_reaching_inputs(build().double(), x)  # (T,)
                if g[-1] < tiny:
                    log.warning("%s: gradient underflowed float64 %d steps back; clamped", name, seq_len - 1)
                g = np.maximum(g, tiny)
                logs[name].append(np.log(g / g[0]))
    return {name: np.exp(np.mean(v, axis=0)) for name, v in logs.items()}


def _plot(curves: dict[str, np.ndarray], seq_len: int, hidden_size: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # the object API on an Agg canvas: headless, and no pyplot state shared with the caller
    fig = Figure(figsize=(11, 7.6), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)
    ax, caption = fig.subplots(2, 1, height_ratios=[5.2, 1])
    k = np.arange(seq_len)
    styles = {
        "rnn": dict(color="#d62728", lw=2.6, ls="-"),
        "lstm_default_init": dict(color="#6baed6", lw=2.0, ls="--"),
        "lstm": dict(color="#2171b5", lw=2.6, ls="-"),
        "lstm_forget_bias_3": dict(color="#08306b", lw=2.0, ls="-."),
    }
    labels = {"rnn": RNN_LABEL, **{name: label for name, (label, _) in LSTM_VARIANTS.items()}}
    for name in ("lstm_forget_bias_3", "lstm", "lstm_default_init", "rnn"):
        y = curves[name]
        ax.plot(k, y, label=labels[name], **styles[name])
        ax.annotate(
            f"{y[-1]:.1g}",
            xy=(k[-1], y[-1]),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
            color=styles[name]["color"],
        )
    ax.set_yscale("log")
    ax.set_xlim(0, seq_len - 1)
    ax.set_xmargin(0)
    lowest = min(float(c.min()) for c in curves.values())
    if lowest < FLOAT32_TINY:
        ax.axhline(FLOAT32_TINY, color="0.45", lw=1, ls=":")
        ax.text(
            1,
            FLOAT32_TINY * 3,
            "smallest float32 number: in float32 training, gradients below this are exactly 0",
            fontsize=8.5,
            color="0.35",
        )
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", axis="y", alpha=0.1)
    ax.set_xlabel("steps before the output, k   (the input is $x_{T-k}$; k = 0 is the last step)")
    ax.set_ylabel(
        r"gradient reaching the input, $\|\partial\, \Sigma h_T / \partial x_{T-k}\|$"
        + "\n(relative to k = 0)"
    )
    fig.suptitle("How far back does the gradient reach? A plain RNN vs an LSTM", fontsize=14, weight="bold")
    ax.set_title(
        f"untrained, 1 layer, 1 input feature, hidden size {hidden_size}; x ~ N(0, 1), {seq_len} steps; "
        f"geometric mean over {N_TRIALS} initialisations × batches of {BATCH}",
        fontsize=9.5,
        color="0.3",
    )
    ax.legend(loc="lower left", fontsize=9.5, framealpha=0.95)
    caption.axis("off")
    caption.text(
        0.0,
        1.0,
        "Why. Going back one step, the RNN's gradient is multiplied by "
        "$W_{hh}^{T}\\,\\mathrm{diag}(\\tanh')$, which shrinks it:\n"
        "it decays exponentially, and inputs more than a few dozen steps back get no training signal.\n"
        "The LSTM's memory is updated by addition, $c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$, so along it "
        "$\\partial c_t / \\partial c_{t-1} = f_t$:\n"
        "the forget gate sets the rate of decay, and when it is near 1 the gradient reaches far back. "
        "Untrained, the gate is\n"
        "only half open; training learns, unit by unit, how long to hold on. "
        "The equations, gate by gate: src/tsforecast/teaching/lstm_cell.py",
        transform=caption.transAxes,
        ha="left",
        va="top",
        fontsize=9.5,
        linespacing=1.55,
        bbox=dict(boxstyle="round,pad=0.6", facecolor="#fffbea", edgecolor="0.75"),
    )
    return fig


def run_explain_gradients(paths: Paths, seq_len: int = 200, hidden_size: int = 64, seed: int = 0) -> dict:
    """Plot the gradient norm reaching each input step, plain RNN vs LSTM.

    Writes plots/gradients.png and plots/gradients.csv (columns steps_back, rnn, lstm,
    lstm_default_init, lstm_forget_bias_3; each relative to steps_back = 0) and returns
    their paths and each network's ratio of the gradient at the earliest input step to
    that at the latest.
    """
    _check_int("seq_len", seq_len, 2)
    _check_int("hidden_size", hidden_size, 1)
    _check_int("seed", seed, 0)
    log.info("gradients: seq_len=%d, hidden_size=%d, %d trials", seq_len, hidden_size, N_TRIALS)
    curves = gradient_curves(seq_len, hidden_size, seed)

    png = paths.plots / "gradients.png"
    csv = paths.plots / "gradients.csv"
    columns = ["rnn", *LSTM_VARIANTS]
    with atomic_file(csv, "w") as fh:
        fh.write(",".join(["steps_back", *columns]) + "\n")
        for k in range(seq_len):
            fh.write(",".join([str(k), *(f"{curves[c][k]:.6e}" for c in columns)]) + "\n")
    fig = _plot(curves, seq_len, hidden_size)
    with atomic_file(png, "wb") as fh:
        fig.savefig(fh, format="png")

    def ratio(name: str) -> float:
        return float(f"{curves[name][-1] / curves[name][0]:.3g}")

    result = {
        "png": _relative(png, paths),
        "csv": _relative(csv, paths),
        "rnn_ratio_first_to_last": ratio("rnn"),
        "lstm_ratio_first_to_last": ratio("lstm"),
        "lstm_default_init_ratio_first_to_last": ratio("lstm_default_init"),
        "lstm_forget_bias_3_ratio_first_to_last": ratio("lstm_forget_bias_3"),
    }
    orders = math.log10(result["lstm_ratio_first_to_last"] / result["rnn_ratio_first_to_last"])
    log.info(
        "gradient %d steps back, relative to the last step: rnn %.3g, lstm %.3g (%.0f orders more)",
        seq_len - 1,
        result["rnn_ratio_first_to_last"],
        result["lstm_ratio_first_to_last"],
        orders,
    )
    log.info("wrote %s and %s", png, csv)
    return result


def _relative(path: Any, paths: Paths) -> str:
    try:
        return str(path.relative_to(paths.root))
    except ValueError:
        return str(path)
