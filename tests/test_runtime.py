"""Process-wide speed settings (mt/runtime.py), each checked in a fresh interpreter: they cannot be undone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.utils import ROOT

# Prints how many MB glibc holds in separately mapped blocks (mallinfo2().hblkhd) grows by when a 64 MB tensor
# is allocated after tune_malloc(heap_only=...).
_PROBE = """
import ctypes, sys, torch
from mt.runtime import tune_malloc
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
assert tune_malloc(heap_only=sys.argv[1] == "True")
before = libc.mallinfo2().hblkhd
x = torch.empty(64 * 2**20, dtype=torch.uint8)
x.fill_(1)
print((libc.mallinfo2().hblkhd - before) >> 20)
"""


def _mapped_growth_mb(heap_only: bool) -> int:
    done = subprocess.run([sys.executable, "-c", _PROBE, str(heap_only)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_heap_only_serves_blocks_over_the_mmap_cap_from_the_heap():
    """glibc caps the mmap threshold at 32 MB: without heap_only a 64 MB tensor is still mapped on its own (and
    page-faulted in anew every step once freed); with it, the block comes from the heap, which keeps it."""
    assert _mapped_growth_mb(heap_only=False) >= 64
    assert _mapped_growth_mb(heap_only=True) == 0
