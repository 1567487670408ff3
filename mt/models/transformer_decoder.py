"""Transformer decoder stack with softmax (KV cache) or linear (constant-size recurrent state) self-attention.

State for ``step`` (all batch-first): ``src_mask`` (B, S) bool; ``pos`` (B,) next position;
``cross_k.{i}``/``cross_v.{i}`` (B, h, S, dh) cross-attention keys/values of layer i, computed once (streaming:
appended by ``extend_memory`` into spare capacity, valid up to ``src_mask``'s length); and
either the self-attention cache of each layer (default variant: ``self_k.{i}``/``self_v.{i}`` (B, h, t, dh)
growing one position per step for softmax attention, variant "cached"; ``self_s.{i}`` (B, h, dh, dh) and
``self_z.{i}`` (B, h, dh) of constant size for linear attention, variant "recurrent") or, with variant
"uncached", ``prefix`` (B, t) the tokens so far and ``visible`` (B, t) their source-visibility limits: every
step then recomputes the whole prefix (kept for measuring what the cache saves).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mt.models.base import DecoderState, EncoderOut, visibility_mask
from mt.models.buffers import append
from mt.models.composed import Decoder
from mt.models.grouping import per_row
from mt.models.transformer_layers import (
    KV,
    SOFTMAX_IMPLS,
    Cache,
    DecoderLayer,
    LayerConfig,
    TokenEmbedding,
    impl_for,
    xavier_init,
)


class TransformerDecoder(Decoder):
    """Embeddings + positions -> ``layers`` decoder layers -> final norm (pre-norm) -> output projection.

    self_attention / cross_attention: softmax (implemented by ``attention_impl``) or linear. The output
    projection has no bias and is tied to the target embedding when ``tie_output``.
    """

    def __init__(self, *, embed: nn.Embedding, layer: LayerConfig, layers: int, max_positions: int,
                 self_attention: str, cross_attention: str, attention_impl: str, tie_output: bool) -> None:
        super().__init__()
        linear_self = self_attention == "linear"
        self.decoder_state = "constant" if linear_self else "growing"
        self.decoding_variants = ("recurrent" if linear_self else "cached", "uncached")
        self.attention_impls = SOFTMAX_IMPLS if "softmax" in (self_attention, cross_attention) else ()
        self.max_target_len = max_positions  # the input at position t (BOS at 0) predicts token t + 1 (EOS included)
        self.n_heads = layer.n_heads
        self.embedding = TokenEmbedding(embed, max_positions, layer.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(layer, impl_for(self_attention, attention_impl), impl_for(cross_attention, attention_impl))
            for _ in range(layers))
        self.norm = nn.LayerNorm(layer.d_model) if layer.pre_norm else nn.Identity()
        self.output = nn.Linear(layer.d_model, embed.num_embeddings, bias=False)
        xavier_init(self.layers)
        nn.init.normal_(self.output.weight, std=layer.d_model**-0.5)
        if tie_output:
            self.output.weight = embed.weight

    def _run(self, x: Tensor, cross: list[KV], cross_mask: Tensor,
             caches: list[Cache] | None) -> tuple[Tensor, list[Cache]]:
        """x (B, T, D) embedded positions; cross_mask (B, 1, T or 1, S) -> features (B, T, D) before ``output``,
        each layer's cache."""
        new_caches = []
        for i, layer in enumerate(self.layers):
            x, cache = layer(x, cross[i], cross_mask, None if caches is None else caches[i])  # (B, T, D)
            new_caches.append(cache)
        return self.norm(x), new_caches  # (B, T, D)

    def _cross_kv(self, memory: Tensor) -> list[KV]:
        """memory (B, S, D) -> per-layer cross-attention K/V (B, heads, S, d_head)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.layers]

    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        x = self.embedding(tgt_in, torch.arange(tgt_in.size(1), device=tgt_in.device))  # (B, T, D)
        cross_mask = visibility_mask(enc.mask, src_visible)[:, None]  # (B, 1, T or 1, S)
        out, _ = self._run(x, self._cross_kv(enc.memory), cross_mask, caches=None)
        return out  # (B, T, D)

    def cross_attention(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        """The last layer's cross-attention at each target position, averaged over heads (B, T, S)."""
        x = self.embedding(tgt_in, torch.arange(tgt_in.size(1), device=tgt_in.device))  # (B, T, D)
        cross, mask = self._cross_kv(enc.memory), enc.mask[:, None, None, :]  # (B, 1, 1, S)
        for i, layer in enumerate(self.layers[:-1]):
            x, _ = layer(x, cross[i], mask, None)  # (B, T, D)
        return self.layers[-1].cross_weights(x, cross[-1], mask).mean(1)  # (B, h, T, S) -> (B, T, S)

    def init_state(self, enc: EncoderOut, variant: str) -> DecoderState:
        batch = enc.memory.size(0)
        state: DecoderState = {"src_mask": enc.mask, "pos": enc.mask.new_zeros(batch, dtype=torch.long)}
        for i, kv in enumerate(self._cross_kv(enc.memory)):
            state[f"cross_k.{i}"], state[f"cross_v.{i}"] = kv.k, kv.v  # (B, h, S, dh)
            if variant != "uncached":
                for name, value in self.layers[i].self_attn.empty_cache(batch, kv.k).items():
                    state[f"self_{name}.{i}"] = value
        if variant == "uncached":
            state["prefix"] = enc.mask.new_zeros(batch, 0, dtype=torch.long)  # (B, 0)
            state["visible"] = enc.mask.new_zeros(batch, 0, dtype=torch.long)  # (B, 0)
        return state

    def source_state_keys(self, state: DecoderState) -> frozenset[str]:
        return frozenset(k for k in state if k == "src_mask" or k.startswith(("cross_k.", "cross_v.")))

    def extend_memory(self, state: DecoderState, new: EncoderOut) -> DecoderState:
        """Append new source positions (memory (B, n, D)): their cross-attention K/V in every layer.

        The K/V are append-only buffers (``buffers.py``) whose valid length is ``src_mask``'s."""
        s = state["src_mask"].size(1)
        out = dict(state, src_mask=torch.cat([state["src_mask"], new.mask], dim=1))  # (B, S + n)
        for i, kv in enumerate(self._cross_kv(new.memory)):
            out[f"cross_k.{i}"] = append(state[f"cross_k.{i}"], s, kv.k, dim=2)  # (B, h, >= S + n, dh)
            out[f"cross_v.{i}"] = append(state[f"cross_v.{i}"], s, kv.v, dim=2)
        return out

    def step(self, tokens: Tensor, state: DecoderState,
             src_visible: Tensor | None = None) -> tuple[Tensor, DecoderState]:
        n, s = len(self.layers), state["src_mask"].size(1)  # cross K/V may have spare capacity beyond s
        cross = [KV(state[f"cross_k.{i}"][:, :, :s], state[f"cross_v.{i}"][:, :, :s]) for i in range(n)]
        new_state = dict(state, pos=state["pos"] + 1)
        src_mask = state["src_mask"]  # (B, S), or (n, S) for B = n * g hypotheses (mt/models/grouping.py)
        if src_visible is not None or "prefix" in state:  # a limit per row: the mask needs one row per row
            src_mask = per_row(src_mask, tokens.size(0))  # (B, S)
        if "prefix" in state:  # uncached: recompute the whole prefix with each position's own limit
            prefix = torch.cat([state["prefix"], tokens[:, None]], dim=1)  # (B, t + 1)
            limit = torch.full_like(tokens, src_mask.size(1)) if src_visible is None else src_visible  # (B,)
            visible = torch.cat([state["visible"], limit[:, None]], dim=1)  # (B, t + 1)
            x = self.embedding(prefix, torch.arange(prefix.size(1), device=prefix.device))  # (B, t + 1, D)
            out, _ = self._run(x, cross, visibility_mask(src_mask, visible)[:, None], caches=None)
            new_state["prefix"], new_state["visible"] = prefix, visible
            return self.output(out[:, -1]), new_state  # (B, V)
        caches = [{name: state[f"self_{name}.{i}"] for name in layer.self_attn.cache_names}
                  for i, layer in enumerate(self.layers)]
        x = self.embedding(tokens[:, None], state["pos"][:, None])  # (B, 1, D)
        out, caches = self._run(x, cross, visibility_mask(src_mask, src_visible)[:, None], caches)  # (B, 1, D)
        for i, cache in enumerate(caches):
            for name, value in cache.items():
                new_state[f"self_{name}.{i}"] = value
        return self.output(out[:, 0]), new_state  # (B, V)
