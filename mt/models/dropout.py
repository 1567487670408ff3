"""Dropout whose mask is cheap to draw on CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``): on a 2-core CPU that was 22% of a
Transformer training step (measured with torch.profiler, bf16, 4k-token batches). Here the mask comes from
random 64-bit integers viewed as bytes, eight mask elements per random draw: an element is kept when its byte is
>= ``round(p * 256)``, so the drop probability is ``p`` rounded to 1/256 (0.1 -> 0.1016, 0.2 -> 0.1992,
0.3 -> 0.3008) and kept elements are scaled by 256 / (256 - threshold), which keeps the expectation exact. The
draws come from torch's default generator, so ``torch.manual_seed`` and Lightning's seeding still make runs
repeatable. Backward multiplies by the saved one-byte mask (as native dropout does). On other devices (CUDA:
fused Philox kernels) and in evaluation this is ``F.dropout``; ``use_byte_masks(False)`` (``runtime.byte_dropout=
false``) makes it ``F.dropout`` on CPU too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 256  # one byte per mask element
_byte_masks = True  # process-wide, like torch.backends flags: set by the entry points from runtime.byte_dropout


def use_byte_masks(enabled: bool) -> None:
    """Draw CPU dropout masks from random bytes (True, the default) or with torch's ``bernoulli_`` (False)."""
    global _byte_masks
    _byte_masks = bool(enabled)


def byte_masks() -> bool:
    """Whether CPU dropout draws byte masks (see :func:`use_byte_masks`)."""
    return _byte_masks


def byte_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[Tensor, float]:
    """A keep-mask of ``shape`` (bool) with drop probability ``p`` rounded to 1/256, and the scale of kept elements."""
    threshold = round(p * _LEVELS)
    n = shape.numel()
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64, device=device)  # 8 bytes each
    keep = words.view(torch.uint8)[:n].view(shape) >= threshold  # shape, bool
    return keep, _LEVELS / (_LEVELS - threshold)


class _MaskedScale(torch.autograd.Function):
    """out = x * keep * scale; the gradient goes through the same mask and scale."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, keep: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(keep).mul_(scale)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with the byte mask on CPU (see the module docstring)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not _byte_masks or not 1 <= round(p * _LEVELS) < _LEVELS:
        return F.dropout(x, p, training)  # (also p under 1/512 or from 255.5/256 on: a byte cannot express them)
    keep, scale = byte_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, keep, scale)


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` using :func:`dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
