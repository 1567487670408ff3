"""Process-wide speed settings (mt/runtime.py), each checked in a fresh interpreter: they cannot be undone."""

from __future__ import annotations

import json
import os
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


# Prints the kernel-cache variables after apply() with runtime.onednn_cache_capacity=argv[1] ("null": unset).
_CACHE_PROBE = """
import json, os, sys
from omegaconf import OmegaConf
from mt.runtime import ONEDNN_CACHE_VARIABLES, apply
capacity = None if sys.argv[1] == "null" else int(sys.argv[1])
apply(OmegaConf.create({"tune_malloc": False, "heap_only": False, "byte_dropout": True,
                        "onednn_cache_capacity": capacity}))
print(json.dumps({name: os.environ.get(name) for name in ONEDNN_CACHE_VARIABLES}))
"""


def _without_cache_variables() -> dict[str, str]:
    """This process's environment less the kernel-cache variables, so a child shows what it set itself."""
    from mt.runtime import ONEDNN_CACHE_VARIABLES

    return {k: v for k, v in os.environ.items() if k not in ONEDNN_CACHE_VARIABLES}


def _cache_variables(capacity: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CACHE_PROBE, capacity], capture_output=True, text=True, cwd=ROOT,
                          env=_without_cache_variables() | env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_onednn_cache_capacity_sizes_both_caches_unless_the_environment_does():
    """runtime.onednn_cache_capacity reaches ideep's and oneDNN's variables; a user's own value wins; null leaves
    the libraries' defaults."""
    assert _cache_variables("16384") == {"LRU_CACHE_CAPACITY": "16384", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16384"}
    assert _cache_variables("16384", LRU_CACHE_CAPACITY="99") == {"LRU_CACHE_CAPACITY": "99",
                                                                   "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16384"}
    assert _cache_variables("null") == {"LRU_CACHE_CAPACITY": None, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": None}


# Runs an entry point's hydra main with its work function replaced by one that prints the kernel-cache variable,
# so what is checked is what the entry point applied before its work: argv = [script, module, function, overrides...]
_ENTRY_PROBE = """
import importlib, json, os, runpy, sys
script, module, function = sys.argv[1:4]
setattr(importlib.import_module(module), function, lambda cfg, *a, **k: print(json.dumps(os.environ.get("LRU_CACHE_CAPACITY"))))
sys.argv = [script] + sys.argv[4:]
runpy.run_path(script, run_name="__main__") if script.endswith(".py") else importlib.import_module(script).main()
"""


@pytest.mark.parametrize("script, module, function", [("evaluate.py", "mt.evaluate", "evaluate"),
                                                      ("mt.stream", "mt.stream", "stream")])
def test_evaluate_and_stream_apply_the_runtime_settings_before_their_work(tmp_path, script, module, function):
    """Decoding gets the same process-wide settings as training (conf/runtime/default.yaml), from its own config."""
    done = subprocess.run([sys.executable, "-c", _ENTRY_PROBE, script, module, function, "ckpt=unused",
                           "runtime.onednn_cache_capacity=777", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, cwd=ROOT, env=_without_cache_variables(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == "777"


def test_train_evaluate_and_stream_compose_one_runtime_group():
    """The settings are defined once (conf/runtime/default.yaml) and every entry point composes them."""
    from mt.config import compose

    runtimes = [compose(name, []).runtime for name in ("train", "evaluate", "stream")]
    assert runtimes[0] == runtimes[1] == runtimes[2] and runtimes[0].onednn_cache_capacity == 16384
