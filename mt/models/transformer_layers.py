"""Transformer building blocks: sinusoidal positions, multi-head attention on SDPA, encoder/decoder layers.

Attention goes through ``torch.nn.functional.scaled_dot_product_attention`` with boolean masks (True = may
attend) or ``is_causal``, so fused kernels are used where available and masks are dtype-safe. The ``math``
implementation computes the same function with an explicit (T, S) attention matrix (for benchmarking the
memory that fused kernels save).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class KV:
    """Keys and values of one attention layer."""

    k: Tensor  # (B, heads, t, d_head)
    v: Tensor  # (B, heads, t, d_head)


class SinusoidalPositions(nn.Module):
    """Fixed sin/cos position encodings (Vaswani et al. 2017), looked up by position index."""

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        pos = torch.arange(max_positions, dtype=torch.float32)[:, None]  # (P, 1)
        inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_positions, d_model)  # (P, D)
        table[:, 0::2] = torch.sin(pos * inv_freq)  # (P, D/2)
        table[:, 1::2] = torch.cos(pos * inv_freq)[:, : d_model // 2]  # (P, D/2)
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        """positions (...) int64 -> encodings (..., D)."""
        return self.table[positions]


ATTENTION_IMPLS = ("sdpa", "math")


def math_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float, is_causal: bool) -> Tensor:
    """SDPA's function with an explicit attention matrix. q (B, h, T, dh), k/v (B, h, S, dh) -> (B, h, T, dh).

    mask: bool broadcastable to (B, h, T, S), True = may attend; is_causal: top-left aligned lower triangle.
    """
    scores = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5  # (B, h, T, S)
    if is_causal:
        causal = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()  # (T, S)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, h, T, S)
    weights = torch.softmax(scores, dim=-1)  # (B, h, T, S)
    if dropout > 0:
        weights = F.dropout(weights, p=dropout)
    return weights.to(v.dtype) @ v  # (B, h, T, dh)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: q/k/v projections + SDPA (or the explicit ``math`` matrix) + output projection."""

    def __init__(self, d_model: int, n_heads: int, attention_dropout: float, impl: str) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={impl!r} is unknown; use one of {', '.join(ATTENTION_IMPLS)}")
        self.impl = impl
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, heads, T, d_head)."""
        return x.view(x.size(0), x.size(1), self.n_heads, self.d_head).transpose(1, 2)  # (B, h, T, dh)

    def project_kv(self, x: Tensor) -> KV:
        """x (B, S, D) -> keys and values (B, heads, S, d_head)."""
        return KV(self._heads(self.k_proj(x)), self._heads(self.v_proj(x)))

    def forward(self, x: Tensor, kv: KV, mask: Tensor | None, is_causal: bool) -> Tensor:
        """x (B, T, D) queries; kv (B, h, S, dh); mask bool broadcastable to (B, h, T, S) -> (B, T, D)."""
        q = self._heads(self.q_proj(x))  # (B, h, T, dh)
        k, v = kv.k.to(q.dtype), kv.v.to(q.dtype)
        dropout = self.attention_dropout if self.training else 0.0
        if self.impl == "math":
            out = math_attention(q, k, v, mask, dropout, is_causal)  # (B, h, T, dh)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        out = out.transpose(1, 2).reshape(x.size(0), x.size(1), -1)  # (B, h, T, dh) -> (B, T, D)
        return self.out_proj(out)


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> ReLU -> dropout -> Linear."""

    def __init__(self, d_model: int, ffn_dim: int, activation_dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.dropout = nn.Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))  # (B, T, D)


class Residual(nn.Module):
    """Residual wrapper with layer norm before (pre-norm) or after (post-norm) the sublayer."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.pre_norm = pre_norm

    def input(self, x: Tensor) -> Tensor:
        """What the sublayer sees: norm(x) in pre-norm, x in post-norm."""
        return self.norm(x) if self.pre_norm else x

    def output(self, x: Tensor, sub: Tensor) -> Tensor:
        """Combine the residual stream x with the sublayer output sub."""
        y = x + self.dropout(sub)
        return y if self.pre_norm else self.norm(y)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, pre_norm: bool, attention_impl: str) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, attention_impl)
        self.ffn = FeedForward(d_model, ffn_dim, activation_dropout)
        self.res_attn = Residual(d_model, dropout, pre_norm)
        self.res_ffn = Residual(d_model, dropout, pre_norm)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """x (B, S, D), src_mask (B, 1, 1, S) bool True=real -> (B, S, D)."""
        h = self.res_attn.input(x)
        x = self.res_attn.output(x, self.self_attn(h, self.self_attn.project_kv(h), src_mask, is_causal=False))
        return self.res_ffn.output(x, self.ffn(self.res_ffn.input(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention (with optional KV cache) + cross-attention + feed-forward."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, pre_norm: bool, attention_impl: str) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, attention_impl)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, attention_impl)
        self.ffn = FeedForward(d_model, ffn_dim, activation_dropout)
        self.res_self = Residual(d_model, dropout, pre_norm)
        self.res_cross = Residual(d_model, dropout, pre_norm)
        self.res_ffn = Residual(d_model, dropout, pre_norm)

    def forward(self, x: Tensor, cross: KV, src_mask: Tensor, past: KV | None) -> tuple[Tensor, KV]:
        """x (B, T, D) new positions; cross K/V (B, h, S, dh); src_mask (B, 1, 1, S); past self K/V or None.

        past None: x is the whole prefix, attended causally. Otherwise x holds the positions after the cached
        ones (T = 1 when stepping), which may see every cached position. Returns (B, T, D) and the self K/V
        of the whole prefix so far (B, h, t, dh).
        """
        if past is not None and x.size(1) > 1:
            raise ValueError("cached decoding advances one position at a time")
        h = self.res_self.input(x)
        kv = self.self_attn.project_kv(h)  # (B, h, T, dh)
        if past is not None:
            kv = KV(torch.cat([past.k, kv.k.to(past.k.dtype)], dim=2),
                    torch.cat([past.v, kv.v.to(past.v.dtype)], dim=2))  # (B, h, t + T, dh)
        causal = past is None and x.size(1) > 1
        x = self.res_self.output(x, self.self_attn(h, kv, None, is_causal=causal))
        x = self.res_cross.output(x, self.cross_attn(self.res_cross.input(x), cross, src_mask, is_causal=False))
        return self.res_ffn.output(x, self.ffn(self.res_ffn.input(x))), kv
