"""Attention over encoder states for the LSTM decoder: Luong dot / general and Bahdanau additive.

All three share one interface so the decoder can precompute the keys once per source batch:
``keys = attn.project_keys(memory)`` (stored in the decoder state), then ``attn(query, keys, memory, mask)``
for any number of query positions at once. Masking uses ``torch.finfo(dtype).min`` so it stays finite and
correct under fp16 / bf16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mt.models.grouping import group_mask, group_rows, ungroup_rows


@dataclass
class AttentionOut:
    """Attention result for T query positions."""

    context: Tensor  # (B, T, M) weighted sum of the memory (values)
    weights: Tensor  # (B, T, S) attention distribution over source positions


class Attention(nn.Module):
    """Base class: scores between queries and precomputed keys, softmax over real source positions."""

    def project_keys(self, memory: Tensor) -> Tensor:
        """memory (B, S, M) -> keys (B, S, K), computed once per source batch."""
        return memory

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """query (B, T, Q), keys (B, S, K) -> unnormalised scores (B, T, S)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> AttentionOut:
        """query (B, T, Q), keys (B, S, K), memory (B, S, M) -> AttentionOut.

        mask: bool True = may attend, (B, S) for every query alike, or per query position (B, T, S) / (B, 1, S)
        (e.g. :func:`mt.models.base.visibility_mask`). keys / memory may hold one row per sentence for
        B = n * g query rows (beam search, ``mt/models/grouping.py``).
        """
        mask = mask[:, None, :] if mask.dim() == 2 else mask  # (B, T or 1, S)
        rows, n = query.size(0), keys.size(0)
        if rows != n:  # g hypotheses per sentence share its memory: attend as n rows of g * T queries
            out = self(group_rows(query, n), keys, memory, group_mask(mask, n, query.size(1)))  # (n, g * T, ...)
            return AttentionOut(context=ungroup_rows(out.context, rows), weights=ungroup_rows(out.weights, rows))
        scores = self.scores(query, keys)  # (B, T, S)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (B, T, S)
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = torch.bmm(weights, memory.to(weights.dtype))  # (B, T, M)
        return AttentionOut(context=context, weights=weights)


def _dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    """query (B, T, Q), keys (B, S, Q) -> (B, T, S)."""
    return torch.bmm(query, keys.transpose(1, 2).to(query.dtype))  # (B, T, Q) x (B, Q, S) -> (B, T, S)


class DotAttention(Attention):
    """Luong dot: score(q, m) = q . m (query and memory sizes must match)."""

    def __init__(self, query_dim: int, memory_dim: int) -> None:
        super().__init__()
        if query_dim != memory_dim:
            raise ValueError(f"dot attention needs query_dim == memory_dim, got {query_dim} != {memory_dim}")

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return _dot_scores(query, keys)


class GeneralAttention(Attention):
    """Luong general: score(q, m) = q . (W m); W m is precomputed as the keys."""

    def __init__(self, query_dim: int, memory_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(memory_dim, query_dim, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, Q)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        return _dot_scores(query, keys)


class AdditiveAttention(Attention):
    """Bahdanau additive: score(q, m) = v . tanh(W_q q + W_k m); W_k m is precomputed as the keys.

    The query is the current decoder output (Luong-style placement), not the previous state as in
    Bahdanau et al. 2015; only the scoring function differs from ``dot``/``general``.
    """

    def __init__(self, query_dim: int, memory_dim: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_dim, query_dim, bias=False)
        self.key_proj = nn.Linear(memory_dim, query_dim, bias=True)
        self.v = nn.Linear(query_dim, 1, bias=False)

    def project_keys(self, memory: Tensor) -> Tensor:
        return self.key_proj(memory)  # (B, S, A)

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.query_proj(query)  # (B, T, A)
        hidden = torch.tanh(q[:, :, None, :] + keys[:, None, :, :])  # (B, T, S, A)
        return self.v(hidden).squeeze(-1)  # (B, T, S)


ATTENTION_TYPES: dict[str, type[Attention]] = {
    "dot": DotAttention,
    "general": GeneralAttention,
    "additive": AdditiveAttention,
    "bahdanau": AdditiveAttention,
}


def build_attention(kind: str, query_dim: int, memory_dim: int) -> Attention:
    """kind: dot | general | additive (alias bahdanau)."""
    if kind not in ATTENTION_TYPES:
        raise ValueError(f"unknown attention {kind!r}; expected one of {sorted(ATTENTION_TYPES)}")
    return ATTENTION_TYPES[kind](query_dim, memory_dim)
