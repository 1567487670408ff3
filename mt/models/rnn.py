"""``nn.LSTM`` that runs in float32 where the CPU has no low-precision LSTM kernel.

Under CPU autocast torch casts an LSTM's input to bf16 / fp16 and hands it to oneDNN. On CPUs without bf16 / fp16
instructions (AVX2-only x86, e.g. many AMD EPYC and older Xeons) oneDNN cannot build that primitive and the call
fails ("could not create a primitive descriptor for the LSTM forward propagation primitive"), so a bf16-mixed run
of the LSTM would crash there. :class:`LSTM` probes the kernel once per process and dtype and, where it is missing,
runs the call in float32 with autocast off: what such a CPU computes fastest anyway. Same parameters and state
dict as ``nn.LSTM``.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


@functools.cache
def cpu_lstm_runs_in(dtype: torch.dtype, training: bool = True) -> bool:
    """Whether this CPU's LSTM kernel accepts ``dtype`` under autocast, for training (forward and backward) or
    inference: a 1-step probe, cached per process. The two differ: an AMX Xeon without avx512_fp16 has an fp16
    inference kernel but no fp16 training one."""
    probe = nn.LSTM(2, 2, batch_first=True)
    try:
        with torch.set_grad_enabled(training), torch.autocast("cpu", dtype=dtype):
            out, _ = probe(torch.zeros(1, 1, 2))
        if training:
            out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def _float32(x: Tensor | PackedSequence | tuple | None) -> Tensor | PackedSequence | tuple | None:
    if x is None:
        return None
    if isinstance(x, tuple) and not isinstance(x, PackedSequence):
        return tuple(t.float() for t in x)
    return x.float() if isinstance(x, Tensor) else x.to(torch.float32)


class LSTM(nn.LSTM):
    """``nn.LSTM``; under CPU autocast to a dtype the CPU's LSTM kernel lacks, the call runs in float32."""

    def forward(self, input: Tensor | PackedSequence, hx: tuple[Tensor, Tensor] | None = None):  # noqa: A002
        if (self.weight_ih_l0.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and not cpu_lstm_runs_in(torch.get_autocast_dtype("cpu"), torch.is_grad_enabled())):
            with torch.autocast("cpu", enabled=False):
                return super().forward(_float32(input), _float32(hx))
        return super().forward(input, hx)
