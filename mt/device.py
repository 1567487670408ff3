"""Device and precision names, resolved in one place for training tools, translation and benchmarks."""

from __future__ import annotations

import contextlib

import torch

from mt.errors import MTError

# every precision name a user may give (Lightning's and the short inference names) -> the short name
_SHORT = {"32": "32", "32-true": "32", "64": "32", "64-true": "32", "bf16": "bf16", "bf16-mixed": "bf16",
          "bf16-true": "bf16", "16": "16", "16-mixed": "16", "16-true": "16"}
# short name -> the Lightning Trainer precision that trains with it
LIGHTNING = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda[:i]``; CUDA without a GPU is an error."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MTError(f"device={name!r} is not a device; use auto, cpu or cuda[:index]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MTError("device=cuda but torch sees no CUDA device; use device=cpu or device=auto")
    if device.type not in ("cpu", "cuda"):
        raise MTError(f"device={name!r} is not supported; use auto, cpu or cuda")
    return device


def short_precision(name: object) -> str:
    """Any precision name (``32``, ``bf16-mixed``, ``16-mixed``, ``bf16`` ...) -> ``32``, ``bf16`` or ``16``."""
    short = _SHORT.get(str(name))
    if short is None:
        raise MTError(f"precision={name!r} is unknown; use one of {', '.join(_SHORT)}")
    return short


def has_bf16_units(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware: a GPU that torch says supports bf16, a CPU
    with avx512_bf16 or AMX. Other CPUs emulate bf16: training measured 28x (Transformer) and 10x (LSTM) slower
    under bf16 autocast than in float32 on an AVX2 CPU (docs/sweeps/throughput.md, session 5), and 2.3x slower
    on an AVX-512 CPU without avx512_bf16 (session 16). oneDNN's ``_is_mkldnn_bf16_supported`` is no guide: it
    is true on any AVX-512 CPU, where oneDNN runs bf16 in emulation."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if check is not None)  # private; absent = assume none


def training_device(accelerator: object) -> torch.device:
    """The device Lightning trains on for ``trainer.accelerator``: CUDA where allowed and present, else the CPU."""
    return torch.device("cuda" if str(accelerator) in ("auto", "gpu", "cuda") and torch.cuda.is_available()
                        else "cpu")


def train_precision(precision: object, device: torch.device) -> str:
    """The Lightning ``precision`` to train with on ``device``: ``auto`` = ``bf16-mixed`` where it has bf16 units,
    else ``32-true``; any other name is passed on as given."""
    if str(precision) != "auto":
        return str(precision)
    return "bf16-mixed" if has_bf16_units(device) else "32-true"


def autocast_for(device: torch.device, precision: object) -> contextlib.AbstractContextManager:
    """Autocast context for inference or a hand-written training loop in ``precision``."""
    short = short_precision(precision)
    if short == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if short == "bf16" else torch.float16)
