"""Where the networks run: the one place ``train.device`` ("auto", "cpu", "cuda") is resolved."""

from __future__ import annotations

import torch

from pggan_core.errors import ConfigError


def pick_device(wanted: str = "auto") -> torch.device:
    """``wanted`` resolved: "auto" takes CUDA when there is one; "cuda" without one is a
    ConfigError naming the fix."""
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA device is visible; use auto or cpu")
    return torch.device(wanted)
