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

oneDNN (bf16 matrix products and linear layers on CPU) compiles a kernel for every operand shape and keeps the
last 1,024 in two least-recently-used caches, ideep's (``LRU_CACHE_CAPACITY``) and oneDNN's own
(``ONEDNN_PRIMITIVE_CACHE_CAPACITY``). Token-budget batches come in hundreds of shapes, each with tens of products
forward and backward, so with the default capacity the caches evict and recompile all the time, and training got
slower the longer the process ran: 5,372 -> 4,463 target tokens/s over 5 minutes of the same 240 batches, the RSS
growing 0.5 GB a minute, against a flat ~5,550 and a flat RSS with both capacities at 16,384
(``tools/drift_probe.py``; docs/sweeps/throughput.md, session 15). ``onednn_cache_capacity`` sets both variables
before the first product, unless the environment already sets them.

:func:`apply` applies the ``runtime`` config group's settings: the allocator tuning, the kernel caches and the CPU
dropout masks (``mt/models/dropout.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from omegaconf import DictConfig

from mt.models.dropout import use_byte_masks

log = logging.getLogger(__name__)

# the environment variables that size ideep's and oneDNN's kernel caches (read at their first use)
ONEDNN_CACHE_VARIABLES = ("LRU_CACHE_CAPACITY", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")

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


def set_onednn_cache_capacity(capacity: int) -> dict[str, str]:
    """Size ideep's and oneDNN's kernel caches (entries) where the environment does not already; they read the
    variables when first used, so this must run before the process's first matrix product. Returns the values."""
    return {name: os.environ.setdefault(name, str(capacity)) for name in ONEDNN_CACHE_VARIABLES}


def apply(runtime: DictConfig) -> None:
    """The process-wide settings of ``runtime`` (conf/runtime/default.yaml), at the start of an entry point."""
    if runtime.tune_malloc:
        tune_malloc(heap_only=bool(runtime.heap_only))
    if runtime.onednn_cache_capacity is not None:
        set_onednn_cache_capacity(int(runtime.onednn_cache_capacity))
    use_byte_masks(bool(runtime.byte_dropout))
