"""Process-wide settings the library applies for speed at the start of its entry points (measured, not folklore).

glibc's malloc returns large blocks to the OS with munmap and maps them again on the next step: a training step
frees and re-allocates tensors of tens of MB, so every step page-faults them in anew. Raising the mmap and trim
thresholds keeps those blocks in the heap for reuse (the effect of ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=
...``, applied with ``mallopt`` so users need not set anything). Measured with ``python -m mtlab.bench
sections=[recipes]`` (whole train.py runs in fresh processes with and without it, alternating).

:func:`apply` applies the ``runtime`` config group's settings: the allocator tuning and the CPU dropout masks
(``mt/models/dropout.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from omegaconf import DictConfig

from mt.models.dropout import use_byte_masks

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_malloc(mmap_threshold_mb: int = 32, trim_threshold_mb: int = 4096, top_pad_mb: int = 1024) -> bool:
    """Keep large freed blocks in glibc's heap for reuse; True when applied (False: not glibc, nothing done)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): keep the platform's allocator as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, mb * 2**20) == 1 for param, mb in ((_M_MMAP_THRESHOLD, mmap_threshold_mb),
                                                              (_M_TRIM_THRESHOLD, trim_threshold_mb),
                                                              (_M_TOP_PAD, top_pad_mb)))
    if not ok:
        log.warning("mallopt refused the allocator settings; continuing with the defaults")
    return ok


def apply(runtime: DictConfig) -> None:
    """The process-wide settings of ``runtime`` (conf/train.yaml), at the start of an entry point."""
    if runtime.tune_malloc:
        tune_malloc()
    use_byte_masks(bool(runtime.byte_dropout))
