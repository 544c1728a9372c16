"""Keep freed memory in the process instead of handing it back to the OS every step.

At 64 px and above a training step allocates activations of tens of MB, which glibc serves with
mmap and unmaps on free, so every step page-faults the same memory in again. Raising the
thresholds once makes glibc keep and reuse it: same results, faster steps
(``benchmarks/bench_train.py --system-malloc``). Like MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=... MALLOC_TOP_PAD_=..., but applied from inside, for every entry point.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_KEEP = 1 << 30  # 1 GiB: trim/pad thresholds above any single step's working set


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse. False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP), (_M_TOP_PAD, _KEEP)))
