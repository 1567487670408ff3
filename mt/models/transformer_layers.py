"""Transformer building blocks: sinusoidal positions, multi-head attention, encoder/decoder layers.

Attention kinds (``impl``): ``sdpa`` goes through ``torch.nn.functional.scaled_dot_product_attention`` with
boolean masks (True = may attend) or ``is_causal``, so fused kernels are used where available and masks are
dtype-safe; ``math`` computes the same function with an explicit (T, S) attention matrix (for benchmarking the
memory that fused kernels save); ``linear`` is kernelized linear attention (``linear_attention.py``).

A decoder's causal self-attention keeps a per-layer cache ``dict[str, Tensor]`` (batch first): ``k``, ``v``
(B, h, t, dh) growing by one position per step for softmax attention; ``s`` (B, h, dh, dh), ``z`` (B, h, dh)
of constant size for linear attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mt.models.dropout import Dropout, byte_masks
from mt.models.dropout import dropout as dropout_fn
from mt.models.grouping import group_mask, group_rows, ungroup_rows
from mt.models.linear_attention import LinearState, causal_linear_attention, feature_map, linear_attention

SOFTMAX_IMPLS = ("sdpa", "math")  # what ``attention_impl`` may choose
Cache = dict[str, Tensor]


@dataclass
class KV:
    """Keys and values of one attention layer."""

    k: Tensor  # (B, heads, t, d_head)
    v: Tensor  # (B, heads, t, d_head)


@dataclass
class LayerConfig:
    """Sizes and regularisation shared by every layer of a Transformer stack (the config keys)."""

    d_model: int
    n_heads: int
    ffn_dim: int
    dropout: float
    attention_dropout: float  # softmax attention weights only
    activation_dropout: float
    pre_norm: bool
    chunk_size: int | None  # causal linear attention's chunk length (None when no layer uses it)


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


def softmax_weights(q: Tensor, k: Tensor, mask: Tensor | None, is_causal: bool = False) -> Tensor:
    """The explicit attention matrix softmax(q k^T / sqrt(dh)): q (B, h, T, dh), k (B, h, S, dh) -> (B, h, T, S).

    mask: bool broadcastable to (B, h, T, S), True = may attend; is_causal: top-left aligned lower triangle.
    """
    scores = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5  # (B, h, T, S)
    if is_causal:
        causal = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()  # (T, S)
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, h, T, S)
    return torch.softmax(scores, dim=-1)  # (B, h, T, S)


def math_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float, is_causal: bool) -> Tensor:
    """SDPA's function with an explicit attention matrix. q (B, h, T, dh), k/v (B, h, S, dh) -> (B, h, T, dh)."""
    weights = softmax_weights(q, k, mask, is_causal)  # (B, h, T, S)
    if dropout > 0:
        weights = dropout_fn(weights, dropout)
    return weights.to(v.dtype) @ v  # (B, h, T, dh)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: q/k/v projections + attention of kind ``impl`` + output projection."""

    def __init__(self, d_model: int, n_heads: int, attention_dropout: float, impl: str,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if impl not in (*SOFTMAX_IMPLS, "linear"):
            raise ValueError(f"attention_impl={impl!r} is unknown; use one of {', '.join(SOFTMAX_IMPLS)}")
        if impl == "linear" and not chunk_size:
            raise ValueError("linear attention needs a chunk_size >= 1")
        self.impl = impl
        self.chunk_size = chunk_size
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

    def _merge(self, out: Tensor) -> Tensor:
        """(B, heads, T, d_head) -> output projection of (B, T, D)."""
        return self.out_proj(out.transpose(1, 2).reshape(out.size(0), out.size(2), -1))  # (B, T, D)

    def project_kv(self, x: Tensor) -> KV:
        """x (B, S, D) -> keys and values (B, heads, S, d_head)."""
        return KV(self._heads(self.k_proj(x)), self._heads(self.v_proj(x)))

    def forward(self, x: Tensor, kv: KV, mask: Tensor | None, is_causal: bool) -> Tensor:
        """x (B, T, D) queries; kv (B, h, S, dh); mask bool broadcastable to (B, h, T, S) -> (B, T, D).

        kv may hold one row per sentence for B = n * g query rows (beam search, ``mt/models/grouping.py``)."""
        rows, n = x.size(0), kv.k.size(0)
        if rows != n:  # g hypotheses per sentence share its keys and values: attend as n rows of g * T queries
            mask = None if mask is None else group_mask(mask, n, x.size(1))
            return ungroup_rows(self(group_rows(x, n), kv, mask, is_causal=False), rows)  # (B, T, D)
        q = self._heads(self.q_proj(x))  # (B, h, T, dh)
        k, v = kv.k.to(q.dtype), kv.v.to(q.dtype)
        dropout = self.attention_dropout if self.training else 0.0
        if self.impl == "linear":
            if is_causal:
                out, _ = causal_linear_attention(q, k, v, None, self.chunk_size)  # (B, h, T, dh)
            else:
                out = linear_attention(q, k, v, mask)  # (B, h, T, dh)
        elif self.impl == "math" or (dropout > 0 and q.device.type == "cpu" and byte_masks()):
            # CPU SDPA with dropout runs its math kernel anyway, drawing the mask with bernoulli_: the same
            # function with the cheap byte mask (mt/models/dropout.py) is faster
            out = math_attention(q, k, v, mask, dropout, is_causal)  # (B, h, T, dh)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        return self._merge(out)

    def weights(self, x: Tensor, kv: KV, mask: Tensor | None) -> Tensor:
        """The attention distribution of queries x (B, T, D) over kv's S positions, per head (B, h, T, S)."""
        q = self._heads(self.q_proj(x)).float()  # (B, h, T, dh)
        k = kv.k.float()  # (B, h, S, dh)
        if self.impl == "linear":  # normalised feature-map products (what linear attention weighs values by)
            scores = feature_map(q) @ feature_map(k).transpose(-2, -1)  # (B, h, T, S)
            scores = scores.masked_fill(~mask, 0.0) if mask is not None else scores
            return scores / scores.sum(-1, keepdim=True).clamp(min=1e-6)
        return softmax_weights(q, k, mask)  # (B, h, T, S)

    @property
    def cache_names(self) -> tuple[str, ...]:
        """Names of the causal self-attention cache's tensors."""
        return ("s", "z") if self.impl == "linear" else ("k", "v")

    def empty_cache(self, batch: int, like: Tensor) -> Cache:
        """The causal self-attention cache of an empty prefix (``like`` gives device and dtype)."""
        if self.impl == "linear":
            return {"s": like.new_zeros(batch, self.n_heads, self.d_head, self.d_head, dtype=torch.float32),
                    "z": like.new_zeros(batch, self.n_heads, self.d_head, dtype=torch.float32)}
        empty = like.new_zeros(batch, self.n_heads, 0, self.d_head)  # (B, h, 0, dh)
        return {"k": empty, "v": empty}

    def causal(self, x: Tensor, cache: Cache | None) -> tuple[Tensor, Cache]:
        """Causal self-attention. x (B, T, D) -> (B, T, D) and the cache of the prefix so far.

        cache None: x is the whole prefix. Otherwise x holds the positions after the cached ones (T = 1 for
        softmax attention; any T for linear attention, whose cache is a constant-size state).
        """
        if self.impl == "linear":
            q = self._heads(self.q_proj(x))  # (B, h, T, dh)
            kv = self.project_kv(x)  # (B, h, T, dh)
            past = None if cache is None else LinearState(cache["s"], cache["z"])
            out, state = causal_linear_attention(q, kv.k, kv.v, past, self.chunk_size)  # (B, h, T, dh)
            return self._merge(out), {"s": state.s, "z": state.z}
        if cache is not None and x.size(1) > 1:
            raise ValueError("cached decoding advances one position at a time")
        kv = self.project_kv(x)  # (B, h, T, dh)
        if cache is not None:
            kv = KV(torch.cat([cache["k"], kv.k.to(cache["k"].dtype)], dim=2),
                    torch.cat([cache["v"], kv.v.to(cache["v"].dtype)], dim=2))  # (B, h, t + T, dh)
        out = self(x, kv, None, is_causal=cache is None and x.size(1) > 1)  # (B, T, D)
        return out, {"k": kv.k, "v": kv.v}


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> ReLU -> dropout -> Linear."""

    def __init__(self, d_model: int, ffn_dim: int, activation_dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.dropout = Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))  # (B, T, D)


class Residual(nn.Module):
    """Residual wrapper with layer norm before (pre-norm) or after (post-norm) the sublayer."""

    def __init__(self, d_model: int, dropout: float, pre_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.pre_norm = pre_norm

    def input(self, x: Tensor) -> Tensor:
        """What the sublayer sees: norm(x) in pre-norm, x in post-norm."""
        return self.norm(x) if self.pre_norm else x

    def output(self, x: Tensor, sub: Tensor) -> Tensor:
        """Combine the residual stream x with the sublayer output sub."""
        y = x + self.dropout(sub)
        return y if self.pre_norm else self.norm(y)


def _attention(cfg: LayerConfig, impl: str) -> MultiHeadAttention:
    return MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.attention_dropout, impl,
                              cfg.chunk_size if impl == "linear" else None)


class EncoderLayer(nn.Module):
    """Self-attention (of kind ``self_impl``) + feed-forward."""

    def __init__(self, cfg: LayerConfig, self_impl: str) -> None:
        super().__init__()
        self.self_attn = _attention(cfg, self_impl)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.activation_dropout)
        self.res_attn = Residual(cfg.d_model, cfg.dropout, cfg.pre_norm)
        self.res_ffn = Residual(cfg.d_model, cfg.dropout, cfg.pre_norm)

    def forward(self, x: Tensor, src_mask: Tensor) -> Tensor:
        """x (B, S, D), src_mask (B, 1, 1, S) bool True=real -> (B, S, D)."""
        h = self.res_attn.input(x)
        x = self.res_attn.output(x, self.self_attn(h, self.self_attn.project_kv(h), src_mask, is_causal=False))
        return self.res_ffn.output(x, self.ffn(self.res_ffn.input(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention (``self_impl``, with a cache) + cross-attention (``cross_impl``) + feed-forward."""

    def __init__(self, cfg: LayerConfig, self_impl: str, cross_impl: str) -> None:
        super().__init__()
        self.self_attn = _attention(cfg, self_impl)
        self.cross_attn = _attention(cfg, cross_impl)
        self.ffn = FeedForward(cfg.d_model, cfg.ffn_dim, cfg.activation_dropout)
        self.res_self = Residual(cfg.d_model, cfg.dropout, cfg.pre_norm)
        self.res_cross = Residual(cfg.d_model, cfg.dropout, cfg.pre_norm)
        self.res_ffn = Residual(cfg.d_model, cfg.dropout, cfg.pre_norm)

    def forward(self, x: Tensor, cross: KV, cross_mask: Tensor, cache: Cache | None) -> tuple[Tensor, Cache]:
        """x (B, T, D) new positions; cross K/V (B, h, S, dh); cross_mask bool (B, 1, T or 1, S); cache or None.

        Returns (B, T, D) and the self-attention cache of the whole prefix so far (see ``MultiHeadAttention.causal``).
        """
        attended, cache = self.self_attn.causal(self.res_self.input(x), cache)
        x = self.res_self.output(x, attended)
        x = self.res_cross.output(x, self.cross_attn(self.res_cross.input(x), cross, cross_mask, is_causal=False))
        return self.res_ffn.output(x, self.ffn(self.res_ffn.input(x))), cache

    def cross_weights(self, x: Tensor, cross: KV, cross_mask: Tensor) -> Tensor:
        """The cross-attention distribution (B, h, T, S) this layer computes for its whole-prefix input x (B, T, D)."""
        attended, _ = self.self_attn.causal(self.res_self.input(x), None)
        x = self.res_self.output(x, attended)
        return self.cross_attn.weights(self.res_cross.input(x), cross, cross_mask)


class TokenEmbedding(nn.Module):
    """Token embedding * sqrt(d_model) + sinusoidal position encoding, then dropout."""

    def __init__(self, embed: nn.Embedding, max_positions: int, dropout: float) -> None:
        super().__init__()
        self.embed = embed
        self.scale = math.sqrt(embed.embedding_dim)
        self.positions = SinusoidalPositions(embed.embedding_dim, max_positions)
        self.dropout = Dropout(dropout)

    def forward(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """tokens (B, T), positions (B, T) or (T,) -> (B, T, D)."""
        return self.dropout(self.embed(tokens) * self.scale + self.positions(positions))


def xavier_init(module: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Xavier-uniform weights and zero biases for every ``nn.Linear`` in ``module`` except those in ``skip``."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear) and not any(sub is s for s in skip):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)


def impl_for(kind: str, attention_impl: str) -> str:
    """Attention ``kind`` (softmax | linear) -> the layer impl (softmax uses ``attention_impl``: sdpa | math)."""
    if kind not in ("softmax", "linear"):
        raise ValueError(f"attention kind {kind!r} is unknown; use softmax or linear")
    if attention_impl not in SOFTMAX_IMPLS:
        raise ValueError(f"attention_impl={attention_impl!r} is unknown; use one of {', '.join(SOFTMAX_IMPLS)}")
    return attention_impl if kind == "softmax" else "linear"
