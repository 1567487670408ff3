"""Transformer encoder stack (Vaswani et al. 2017) with softmax or linear self-attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mt.models.base import EncoderOut, Seq2Seq
from mt.models.composed import Encoder
from mt.models.transformer_layers import (
    SOFTMAX_IMPLS,
    EncoderLayer,
    LayerConfig,
    TokenEmbedding,
    impl_for,
    xavier_init,
)


class TransformerEncoder(Encoder):
    """Scaled embeddings + positions -> ``layers`` encoder layers -> final layer norm (pre-norm only).

    self_attention: softmax (implemented by ``attention_impl``: sdpa | math) or linear.
    """

    def __init__(self, *, embed: nn.Embedding, layer: LayerConfig, layers: int, max_positions: int,
                 self_attention: str, attention_impl: str) -> None:
        super().__init__()
        impl = impl_for(self_attention, attention_impl)
        self.attention_impls = SOFTMAX_IMPLS if self_attention == "softmax" else ()
        self.max_source_len = max_positions
        self.output_dim = layer.d_model
        self.embedding = TokenEmbedding(embed, max_positions, layer.dropout)
        self.layers = nn.ModuleList(EncoderLayer(layer, impl) for _ in range(layers))
        # pre-norm stacks end with a layer norm; post-norm layers already end normalised
        self.norm = nn.LayerNorm(layer.d_model) if layer.pre_norm else nn.Identity()
        xavier_init(self.layers)

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        mask = Seq2Seq.lengths_to_mask(src_lengths.to(src.device), src.size(1))  # (B, S)
        x = self.embedding(src, torch.arange(src.size(1), device=src.device))  # (B, S, D)
        for layer in self.layers:
            x = layer(x, mask[:, None, None, :])  # (B, S, D)
        return EncoderOut(memory=self.norm(x), mask=mask)
