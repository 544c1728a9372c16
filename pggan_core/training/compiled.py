"""``torch.compile`` for the trainer's first-order paths, with a fall-back to eager.

At the demo's narrow widths a training step spends much of its time between convolutions:
small elementwise kernels (bias, leaky ReLU, pixel norm, the fade's lerp) and the Python and
autograd overhead of launching each. Compiling fuses those chains. Only graphs whose backward
is first order are compiled (``Trainer._networks_for``): the critic's gradient penalty
differentiates the critic twice, which compiled graphs do not support.

A machine where compiling fails (no C++ compiler, an unsupported platform) trains on, eager,
after one warning: the results are the same up to float rounding either way
(``tests/test_compiled.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn


class CompiledOrEager(nn.Module):
    """``module`` compiled; on the first call that fails to compile, ``module`` itself for
    good. An error the eager module raises too (a wrong input shape) is raised as it is."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        # kept off the module tree: it wraps the same parameters, which must be listed once
        object.__setattr__(self, "compiled", torch.compile(module))
        self.failed = False

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # compilers fail in many ways; eager decides below
                result = self.module(*args, **kwargs)  # raises if the input is at fault
                self.failed = True
                warnings.warn(f"torch.compile failed ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); "
                              f"training on without it (set train.compile: false to silence)",
                              RuntimeWarning, stacklevel=2)
                return result
        return self.module(*args, **kwargs)


def compiled_or_eager(module: nn.Module) -> CompiledOrEager:
    """``module`` behind ``torch.compile``, falling back to eager if compiling fails."""
    return CompiledOrEager(module)
