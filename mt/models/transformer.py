"""Transformer encoder-decoder (Vaswani et al. 2017), pre-norm by default, with a key/value cache.

Decoder state for ``step`` (all batch-first): ``src_mask`` (B, S) bool; ``pos`` (B,) next position;
``cross_k.{i}``/``cross_v.{i}`` (B, heads, S, d_head) precomputed cross-attention keys/values of layer i;
and either ``self_k.{i}``/``self_v.{i}`` (B, heads, t, d_head) self-attention caches grown by one position
per step (variant "cached", the default) or ``prefix`` (B, t), the emitted tokens, with
``init_state(enc, variant="uncached")``: then every step recomputes the whole prefix (kept for measuring
what the cache saves).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mt.models.base import DecoderState, EncoderOut, ModelTraits, Seq2Seq
from mt.models.transformer_layers import ATTENTION_IMPLS, KV, DecoderLayer, EncoderLayer, SinusoidalPositions


class Transformer(Seq2Seq):
    """Transformer seq2seq; one embedding matrix for source, target and output when share_embeddings."""

    def __init__(self, *, vocab_size: int, d_model: int, n_heads: int, ffn_dim: int, encoder_layers: int,
                 decoder_layers: int, dropout: float, attention_dropout: float, activation_dropout: float,
                 pre_norm: bool, share_embeddings: bool, max_positions: int, attention_impl: str = "sdpa") -> None:
        # attention_impl's default (conf/model/transformer.yaml sets it) is here only so that checkpoints written
        # before the option existed, whose stored model config lacks the key, still load.
        super().__init__(vocab_size)
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.embed_scale = math.sqrt(d_model)
        self.src_embed = nn.Embedding(vocab_size, d_model, padding_idx=self.pad_id)
        self.tgt_embed = self.src_embed if share_embeddings else nn.Embedding(
            vocab_size, d_model, padding_idx=self.pad_id)
        self.output = nn.Linear(d_model, vocab_size, bias=False)
        self.positions = SinusoidalPositions(d_model, max_positions)
        self.max_source_len = max_positions
        self.max_target_len = max_positions - 1  # position 0 holds BOS
        self.dropout = nn.Dropout(dropout)
        layer_args = (d_model, n_heads, ffn_dim, dropout, attention_dropout, activation_dropout, pre_norm,
                      attention_impl)
        self.encoder = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(decoder_layers))
        # pre-norm stacks end with a layer norm; post-norm layers already end normalised
        self.encoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self._init_weights(d_model)
        if share_embeddings:
            self.output.weight = self.tgt_embed.weight

    def _init_weights(self, d_model: int) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for emb in dict.fromkeys([self.src_embed, self.tgt_embed]):  # each matrix once, fixed order
            nn.init.normal_(emb.weight, std=d_model**-0.5)
            nn.init.zeros_(emb.weight[self.pad_id])
        nn.init.normal_(self.output.weight, std=d_model**-0.5)

    def _embed(self, embed: nn.Embedding, tokens: Tensor, positions: Tensor) -> Tensor:
        """tokens (B, T), positions (B, T) or (T,) -> scaled embeddings + positions (B, T, D)."""
        return self.dropout(embed(tokens) * self.embed_scale + self.positions(positions))

    # --- encoder -------------------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        mask = self.lengths_to_mask(src_lengths, src.size(1))  # (B, S)
        x = self._embed(self.src_embed, src, torch.arange(src.size(1), device=src.device))  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, mask[:, None, None, :])  # (B, S, D)
        return EncoderOut(memory=self.encoder_norm(x), mask=mask)

    # --- decoder -------------------------------------------------------------------------------------------
    def _run_decoder(self, x: Tensor, cross: list[KV], src_mask: Tensor,
                     past: list[KV] | None) -> tuple[Tensor, list[KV]]:
        """x (B, T, D) embedded target positions -> logits (B, T, V) and each layer's self K/V so far."""
        mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        kvs = []
        for i, layer in enumerate(self.decoder):
            x, kv = layer(x, cross[i], mask, None if past is None else past[i])  # (B, T, D)
            kvs.append(kv)
        return self.output(self.decoder_norm(x)), kvs  # (B, T, V)

    def _cross_kv(self, memory: Tensor) -> list[KV]:
        """memory (B, S, D) -> per-layer cross-attention K/V (B, heads, S, d_head)."""
        return [layer.cross_attn.project_kv(memory) for layer in self.decoder]

    def decode(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        x = self._embed(self.tgt_embed, tgt_in, torch.arange(tgt_in.size(1), device=tgt_in.device))  # (B,T,D)
        logits, _ = self._run_decoder(x, self._cross_kv(enc.memory), enc.mask, past=None)
        return logits  # (B, T, V)

    @property
    def traits(self) -> ModelTraits:
        return ModelTraits(family="transformer", decoder_state="growing", decoding_variants=("cached", "uncached"),
                           attention_impls=ATTENTION_IMPLS)

    def init_state(self, enc: EncoderOut, variant: str | None = None) -> DecoderState:
        cached = self.check_variant(variant) == "cached"
        batch = enc.memory.size(0)
        state: DecoderState = {"src_mask": enc.mask, "pos": enc.mask.new_zeros(batch, dtype=torch.long)}
        for i, kv in enumerate(self._cross_kv(enc.memory)):
            state[f"cross_k.{i}"], state[f"cross_v.{i}"] = kv.k, kv.v  # (B, h, S, dh)
            if cached:
                empty = kv.k.new_zeros(batch, self.n_heads, 0, self.d_head)  # (B, h, 0, dh)
                state[f"self_k.{i}"], state[f"self_v.{i}"] = empty, empty
        if not cached:
            state["prefix"] = enc.mask.new_zeros(batch, 0, dtype=torch.long)  # (B, 0)
        return state

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        n = len(self.decoder)
        cross = [KV(state[f"cross_k.{i}"], state[f"cross_v.{i}"]) for i in range(n)]
        new_state = dict(state, pos=state["pos"] + 1)
        if "prefix" in state:  # uncached: recompute the whole prefix
            prefix = torch.cat([state["prefix"], tokens[:, None]], dim=1)  # (B, t + 1)
            x = self._embed(self.tgt_embed, prefix, torch.arange(prefix.size(1), device=prefix.device))
            logits, _ = self._run_decoder(x, cross, state["src_mask"], past=None)  # (B, t + 1, V)
            new_state["prefix"] = prefix
            return logits[:, -1], new_state  # (B, V)
        past = [KV(state[f"self_k.{i}"], state[f"self_v.{i}"]) for i in range(n)]
        x = self._embed(self.tgt_embed, tokens[:, None], state["pos"][:, None])  # (B, 1, D)
        logits, kvs = self._run_decoder(x, cross, state["src_mask"], past=past)  # (B, 1, V)
        for i, kv in enumerate(kvs):
            new_state[f"self_k.{i}"], new_state[f"self_v.{i}"] = kv.k, kv.v  # (B, h, t + 1, dh)
        return logits[:, 0], new_state  # (B, V)
