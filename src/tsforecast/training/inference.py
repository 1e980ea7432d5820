"""What running a trained model needs, below both training and evaluation.

Device choice, mixed precision, and batched prediction on the scaled axis (``predict_windows``
over an array of windows: the forecast, evaluation and serving paths). ``train`` and ``evaluate``
import this module; it imports neither.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tsforecast.errors import TrainingError

if TYPE_CHECKING:
    from tsforecast.training.model import LSTMForecaster


def select_device(preference: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA request without CUDA fails."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(
                f"train.device={preference!r} but no CUDA device is available; use train.device: auto or cpu"
            )
        index = int(preference.split(":")[1]) if ":" in preference else 0
        if index >= torch.cuda.device_count():
            raise TrainingError(
                f"train.device={preference!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return torch.device(preference)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16).

    ``TSFORECAST_CPU_BF16=0`` turns bf16 training off (fp32 everywhere on the CPU).
    """
    if os.environ.get("TSFORECAST_CPU_BF16") == "0":
        return False
    try:  # private helpers of torch.cpu; absent or failing means "no"
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_context(device: torch.device, train: bool = False) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision: on CUDA bf16 where supported (else fp16); on the CPU bf16 for the
    training step only (``train=True``) and only where the CPU has native bf16.

    On a CPU with AMX the LSTM forward/backward in bf16 (fp32 weights, optimizer and loss)
    ran 1.6x faster (benchmarks/run.py sizes, L=96) and reached the same val and test MSE
    (L=336, H=48: 0.012537 vs 0.012536). Validation and evaluation stay fp32 on the CPU.
    """
    if device.type == "cpu":
        if train and cpu_has_native_bf16():
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.no_grad()
def predict_windows(model: LSTMForecaster, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Scaled input windows (N, L, C) -> scaled forecasts (N, H), fp32, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(
            torch.as_tensor(np.ascontiguousarray(x[i : i + batch_size]), dtype=torch.float32, device=device)
        )
        .double()
        .cpu()
        .numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(out) if out else np.empty((0, model.args.horizon))


__all__ = [
    "amp_context",
    "cpu_has_native_bf16",
    "predict_windows",
    "select_device",
]
