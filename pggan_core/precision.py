"""Numeric precision: fp32 everywhere, or bf16 autocast for the convolutions.

``train.precision`` is ``auto`` (bf16 on CUDA, fp32 on CPU, where bf16 is slower on most CPUs),
``fp32`` or ``bf16``. ``bf16`` on a CPU is slower, but bf16 and fp32 tensors meet there as on a
GPU (generator output, critic scores, gradient penalty, fade-in blends, encoder, evaluation), so
the tests check the GPU path on a machine without one.

Autocast runs convolutions and matrix products in bf16; what must stay fp32 is kept there at the
seams: the generator's images are cast to the reals' fp32 before they are mixed or compared, and
critic scores and losses are reduced, the gradient penalty's norm and pixel norm's mean of
squares taken, in fp32. Weights, gradients, Adam's state, the EMA generator and checkpoints are
fp32 throughout (autocast never changes a parameter's dtype).
"""

from __future__ import annotations

import torch

from pggan_core.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def resolve(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``precision`` on ``device`` (``auto``: bf16 on CUDA only)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=resolve(precision, device) == "bf16")
