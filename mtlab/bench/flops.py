"""How much arithmetic a training step is, and how fast this machine multiplies matrices: the roofline of tok/s.

``step_flops`` counts one training forward + backward with ``torch.utils.flop_counter`` (matrix products,
attention), plus the fused recurrent kernels it does not know (oneDNN's LSTM layer on CPU, cuDNN's RNN on GPU:
2 x tokens x the gate weights' size forward, twice that backward). ``matmul_peak`` times large square products in
a precision's matrix dtype, the best this machine does. Their ratio bounds the tokens/s of a preset: a step that
were nothing but matrix products at that peak.
"""

from __future__ import annotations

import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mt.api import Batch, Seq2Seq, autocast_for, batch_loss
from mtlab.bench.system import synchronize

_MATMUL_DTYPE = {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}


def _rnn_forward_flops(tokens: int, weights: list) -> int:
    """2 x tokens x the size of the gate matrices (the input and recurrent weights: the 2-D ones)."""
    return 2 * tokens * sum(math.prod(w) for w in weights if w is not None and len(w) == 2)


def _tokens(input_shape: tuple) -> int:
    return math.prod(input_shape[:-1])  # (T, B, I), (B, T, I) or packed (N, I): every position once


def _mkldnn_layer(input, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return _rnn_forward_flops(_tokens(input), [w_ih, w_hh])


def _mkldnn_layer_backward(input, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return 2 * _rnn_forward_flops(_tokens(input), [w_ih, w_hh])  # input and weight gradients


def _cudnn_rnn(input, weights, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return _rnn_forward_flops(_tokens(input), list(weights))


def _cudnn_rnn_backward(input, weights, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return 2 * _rnn_forward_flops(_tokens(input), list(weights))


RNN_FORMULAS = {
    torch.ops.aten.mkldnn_rnn_layer: _mkldnn_layer,
    torch.ops.aten.mkldnn_rnn_layer_backward: _mkldnn_layer_backward,
    torch.ops.aten._cudnn_rnn: _cudnn_rnn,
    torch.ops.aten._cudnn_rnn_backward: _cudnn_rnn_backward,
}


def step_flops(model: Seq2Seq, batch: Batch, smoothing: float, chunk: int | None, precision: str,
               device: torch.device) -> int:
    """Floating-point operations of one training forward + backward of ``model`` on ``batch`` (gradients are
    cleared afterwards)."""
    model.train()
    with FlopCounterMode(display=False, custom_mapping=RNN_FORMULAS) as counter:
        with autocast_for(device, precision):
            loss_sum, _ = batch_loss(model, batch, smoothing, chunk)
        (loss_sum / max(batch.n_tgt_tokens, 1)).backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_peak(precision: str, device: torch.device, n: int, repeats: int = 5) -> float:
    """FLOP/s of the fastest of ``repeats`` (n x n) @ (n x n) products in the precision's matrix dtype."""
    dtype = _MATMUL_DTYPE[precision]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
