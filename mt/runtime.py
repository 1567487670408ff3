"""Process-wide settings the library applies for speed at the start of its entry points (measured, not folklore).

glibc's malloc returns large blocks to the OS with munmap and maps them again on the next step: a training step
frees and re-allocates tensors of tens of MB, so every step page-faults them in anew. Raising the mmap and trim
thresholds keeps those blocks in the heap for reuse (the effect of ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=
...``, applied with ``mallopt`` so users need not set anything). glibc caps the mmap threshold at 32 MB, so blocks
above it (the logits of a 4k-token batch over an 8k vocabulary: 64 MB in bf16, 128 MB in fp32) were still mapped
and faulted in every step: ``heap_only`` (``M_MMAP_MAX=0``) serves them from the heap too. On a 2-core Xeon, an
fp32 ``exp`` over 4000 x 8000 took 53 ms with glibc's defaults, 57 ms with the thresholds alone, 13 ms heap-only
(docs/sweeps/throughput.md, session 6). Measured whole with ``python -m mtlab.bench sections=[recipes]`` (train.py
runs in fresh processes with and without each setting, alternating).

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
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4


def tune_malloc(mmap_threshold_mb: int = 32, trim_threshold_mb: int = 4096, top_pad_mb: int = 1024,
                heap_only: bool = True) -> bool:
    """Keep large freed blocks in glibc's heap for reuse (``heap_only``: every block, none mapped on its own);
    True when applied (False: not glibc, nothing done)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): keep the platform's allocator as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = [(_M_MMAP_THRESHOLD, mmap_threshold_mb * 2**20), (_M_TRIM_THRESHOLD, trim_threshold_mb * 2**20),
                (_M_TOP_PAD, top_pad_mb * 2**20)] + ([(_M_MMAP_MAX, 0)] if heap_only else [])
    ok = all(mallopt(param, value) == 1 for param, value in settings)
    if not ok:
        log.warning("mallopt refused the allocator settings; continuing with the defaults")
    return ok


def apply(runtime: DictConfig) -> None:
    """The process-wide settings of ``runtime`` (conf/train.yaml), at the start of an entry point."""
    if runtime.tune_malloc:
        tune_malloc(heap_only=bool(runtime.heap_only))
    use_byte_masks(bool(runtime.byte_dropout))
