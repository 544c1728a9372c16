"""``torch.compile`` for the trainer's first-order paths, with a fall-back to eager.

At the demo's narrow widths a training step spends much of its time between convolutions:
small elementwise kernels (bias, leaky ReLU, pixel norm, the fade's lerp) and the Python and
autograd overhead of launching each. Compiling fuses those chains. Only graphs whose backward
is first order are compiled (``Trainer._networks_for``): the critic's gradient penalty
differentiates the critic twice, which compiled graphs do not support.

A machine where compiling fails (no C++ compiler, an unsupported platform) trains on, eager,
after one warning: the results are the same up to float rounding either way
(``tests/test_compiled.py``).

Compiled graphs are cached on disk between processes (under ``TORCHINDUCTOR_CACHE_DIR``), but
torch 2.13's cache key leaves out the CPU kernels chosen at run time: a graph compiled with
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` set and loaded without them (or the other
way round) crashes the process with a segmentation fault. So unless the user names a cache
folder, each choice of CPU kernels gets a folder of its own (``inductor_cache_dir``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def inductor_cache_dir(default: str, aten_capability: str, onednn_isa: str | None) -> Path:
    """The compiled-graph cache folder for one choice of CPU kernels: ``default`` (torch's own
    folder), then a sub-folder named by ATen's CPU capability and oneDNN's ISA cap."""
    return Path(default) / f"aten-{aten_capability.lower()}_onednn-{(onednn_isa or 'any').lower()}"


def keep_compiled_graphs_apart_per_cpu_kernels() -> None:
    """Point torch's compiled-graph cache at ``inductor_cache_dir`` for this process's CPU
    kernels, unless the user set ``TORCHINDUCTOR_CACHE_DIR`` to a folder of their own."""
    default = default_cache_dir()
    if os.environ.get(CACHE_ENV, default) != os.path.abspath(default):
        return  # the user's folder; theirs to keep apart
    os.environ[CACHE_ENV] = str(inductor_cache_dir(
        default, torch.backends.cpu.get_cpu_capability(), os.environ.get("ONEDNN_MAX_CPU_ISA")))


class CompiledOrEager(nn.Module):
    """``module`` compiled; on the first call that fails to compile, ``module`` itself for
    good. An error the eager module raises too (a wrong input shape) is raised as it is."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        keep_compiled_graphs_apart_per_cpu_kernels()
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
