"""Kernelized linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"), plain PyTorch, CPU-ready.

``sim(q, k) = phi(q) . phi(k)`` with ``phi(x) = elu(x) + 1`` (positive, so every normaliser is > 0) replaces
``exp(q . k / sqrt(d))``; attention is ``sum_j sim(q, k_j) v_j / sum_j sim(q, k_j)``. No 1/sqrt(d) scaling and
no attention dropout (there is no weight matrix to drop from in the factorised form).

* Non-causal (:func:`linear_attention`): with a key-only mask it is factorised, ``phi(Q) (phi(K)^T V)``: memory
  and time linear in length. With a per-query mask (source visibility limits) or a single query (a decoding
  step, where it is cheaper) it uses the explicit kernel weights (T, S).
* Causal (:func:`causal_linear_attention`): the recurrence ``S_t = S_{t-1} + phi(k_t) v_t^T``,
  ``z_t = z_{t-1} + phi(k_t)``, ``out_t = phi(q_t) S_t / (phi(q_t) . z_t)`` with a constant-size state
  (S (B, h, dh, dv), z (B, h, dh)). Over T positions it runs chunked: within a chunk of C positions an
  explicit masked (C, C) matrix, across chunks the state, via cumulative sums of per-chunk states: memory
  O(T (C + dh^2 / C)) per head and no Python loop. A step is the same function with T = 1 and a state.

Everything runs in float32 (float64 for float64 inputs) with autocast disabled: sums of many positive terms
lose too much in bf16. The output is cast back to the query's dtype; the state stays in the accumulation dtype.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-6  # added to every normaliser


@dataclass
class LinearState:
    """Causal linear attention state after some prefix (float32)."""

    s: Tensor  # (B, h, dh, dv) sum of phi(k) v^T
    z: Tensor  # (B, h, dh) sum of phi(k)


def feature_map(x: Tensor) -> Tensor:
    """phi(x) = elu(x) + 1 > 0."""
    return F.elu(x) + 1.0


def _no_autocast(device: torch.device) -> AbstractContextManager:
    """Autocast switched off on ``device`` (a no-op where autocast does not exist, e.g. the meta device)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types and float32, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def linear_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
    """q (B, h, T, dh), k (B, h, S, dh), v (B, h, S, dv) -> (B, h, T, dv), in q's dtype.

    mask: None or bool broadcastable to (B, h, T, S), True = may attend; a (.., 1, S) mask is key-only.
    """
    dtype, acc = q.dtype, _accumulation_dtype(q.dtype)
    with _no_autocast(q.device):
        q, k, v = feature_map(q.to(acc)), feature_map(k.to(acc)), v.to(acc)
        key_only = mask is None or mask.size(-2) == 1
        if key_only and q.size(-2) > k.size(-1):  # factorised: cheaper than the (T, S) weights here
            if mask is not None:
                k = k * mask.transpose(-2, -1)  # (B, h, S, dh): masked keys contribute nothing
            kv = k.transpose(-2, -1) @ v  # (B, h, dh, dv)
            num = q @ kv  # (B, h, T, dv)
            den = q @ k.sum(-2)[..., None]  # (B, h, T, 1)
        else:
            weights = q @ k.transpose(-2, -1)  # (B, h, T, S)
            if mask is not None:
                weights = weights * mask  # (B, h, T, S)
            num = weights @ v  # (B, h, T, dv)
            den = weights.sum(-1, keepdim=True)  # (B, h, T, 1)
        return (num / (den + EPS)).to(dtype)


def _exclusive_cumsum(x: Tensor, dim: int) -> Tensor:
    """Sum of the entries before each index along ``dim`` (zero at index 0)."""
    zeros = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([zeros, x.narrow(dim, 0, x.size(dim) - 1).cumsum(dim)], dim=dim)


def causal_linear_attention(q: Tensor, k: Tensor, v: Tensor, state: LinearState | None,
                            chunk_size: int) -> tuple[Tensor, LinearState]:
    """Causal linear attention over T new positions after ``state`` (None = empty prefix).

    q, k (B, h, T, dh), v (B, h, T, dv) -> output (B, h, T, dv) in q's dtype and the state after the T positions.
    """
    dtype, acc = q.dtype, _accumulation_dtype(q.dtype)
    batch, heads, length, dh = q.shape
    dv = v.size(-1)
    with _no_autocast(q.device):
        q, k, v = feature_map(q.to(acc)), feature_map(k.to(acc)), v.to(acc)
        if state is None:
            state = LinearState(q.new_zeros(batch, heads, dh, dv), q.new_zeros(batch, heads, dh))
        s0, z0 = state.s.to(acc), state.z.to(acc)
        size = min(chunk_size, length)
        n = -(-length // size)  # chunks
        pad = n * size - length  # zero rows after the feature map: padded keys add nothing to the state
        q, k, v = (F.pad(x, (0, 0, 0, pad)).view(batch, heads, n, size, x.size(-1)) for x in (q, k, v))  # (B,h,N,C,.)
        kv = k.transpose(-2, -1) @ v  # (B, h, N, dh, dv) per-chunk sum of phi(k) v^T
        ksum = k.sum(3)  # (B, h, N, dh)
        s_before = s0[:, :, None] + _exclusive_cumsum(kv, 2)  # (B, h, N, dh, dv) state before each chunk
        z_before = z0[:, :, None] + _exclusive_cumsum(ksum, 2)  # (B, h, N, dh)
        weights = torch.tril(q @ k.transpose(-2, -1))  # (B, h, N, C, C) within-chunk, causal
        num = q @ s_before + weights @ v  # (B, h, N, C, dv)
        den = (q @ z_before[..., None])[..., 0] + weights.sum(-1)  # (B, h, N, C)
        out = (num / (den[..., None] + EPS)).view(batch, heads, n * size, dv)[:, :, :length]  # (B, h, T, dv)
        new_state = LinearState(s0 + kv.sum(2), z0 + ksum.sum(2))  # (B, h, dh, dv), (B, h, dh)
    return out.to(dtype), new_state
