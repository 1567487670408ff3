"""Transformer encoder with causal (prefix-only) self-attention: the streaming option of the Transformer
(``model.causal_encoder=true``).

Source position i attends to positions <= i only, so a prefix's encoder states are final once it has been
read. Reading more tokens runs each layer on the new positions only, against cached keys/values of the
positions read before (one cache per layer, growing by one position per token): one position of compute
per token, plus attention over the cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mt.errors import MTError
from mt.models.base import EncoderOut, EncoderStream, Seq2Seq
from mt.models.transformer_encoder import TransformerEncoder
from mt.models.transformer_layers import KV, EncoderLayer


def _layer(layer: EncoderLayer, x: Tensor, h: Tensor, kv: KV, mask: Tensor | None) -> Tensor:
    """One encoder layer on the new positions x (B, n, D), h = ``layer.res_attn.input(x)`` (computed once, for
    the keys/values too), whose attention keys/values are ``kv`` (the cache plus the new positions,
    (B, h, s + n, dh)); mask bool (1, 1, n, s + n) or None (n = 1) -> (B, n, D)."""
    x = layer.res_attn.output(x, layer.self_attn(h, kv, mask, is_causal=False))
    return layer.res_ffn.output(x, layer.ffn(layer.res_ffn.input(x)))


class CausalTransformerEncoder(TransformerEncoder):
    """The Transformer encoder stack with a causal mask; incremental ``read`` with a per-layer K/V cache.

    Stream state (batch-first): ``pos`` (B,) tokens read; ``k.{i}``/``v.{i}`` (B, h, capacity, dh) buffers whose
    first ``pos`` positions hold the self-attention keys/values of layer i over the tokens read so far. A buffer
    doubles when full and new positions are written into it in place (amortised O(1) per token, instead of
    copying the whole cache at every read), so ``read`` consumes the stream it is given: continue from the one
    it returns.
    """

    streaming = True

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        size = src.size(1)
        mask = Seq2Seq.lengths_to_mask(src_lengths.to(src.device), size)  # (B, S)
        causal = torch.ones(size, size, dtype=torch.bool, device=src.device).tril()  # (S, S)
        attend = mask[:, None, None, :] & causal[None, None]  # (B, 1, S, S)
        x = self.embedding(src, torch.arange(size, device=src.device))  # (B, S, D)
        for layer in self.layers:
            x = layer(x, attend)  # (B, S, D)
        return EncoderOut(memory=self.norm(x), mask=mask)

    def start_stream(self, batch_size: int, device: torch.device) -> EncoderStream:
        stream: EncoderStream = {"pos": torch.zeros(batch_size, dtype=torch.long, device=device)}
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            empty = torch.zeros(batch_size, attn.n_heads, 0, attn.d_head, device=device)  # (B, h, 0, dh)
            stream[f"k.{i}"], stream[f"v.{i}"] = empty, empty
        return stream

    def read(self, stream: EncoderStream, tokens: Tensor) -> tuple[EncoderOut, EncoderStream]:
        n = tokens.size(1)
        start = int(stream["pos"].max())
        if start + n > self.max_source_len:
            raise MTError(f"the source stream is longer than the model's {self.max_source_len} positions "
                          "(model.max_positions); end the sentence sooner or train with more positions")
        positions = stream["pos"][:, None] + torch.arange(n, device=tokens.device)  # (B, n)
        x = self.embedding(tokens, positions)  # (B, n, D)
        past, end = start, start + n
        # new position j may see the past and new positions up to itself
        mask = None if n == 1 else torch.ones(n, end, dtype=torch.bool, device=x.device).tril(past)[None, None]
        new: EncoderStream = {"pos": stream["pos"] + n}
        for i, layer in enumerate(self.layers):
            h = layer.res_attn.input(x)  # (B, n, D)
            kv = layer.self_attn.project_kv(h)  # (B, h, n, dh)
            for name, part in (("k", kv.k), ("v", kv.v)):
                buf = stream[f"{name}.{i}"]  # (B, h, capacity, dh)
                if buf.size(2) < end:  # full: double the capacity, keep what was read (in the compute dtype)
                    grown = part.new_zeros(buf.size(0), buf.size(1), max(2 * buf.size(2), end, 16), buf.size(3))
                    grown[:, :, :past] = buf[:, :, :past]
                    buf = grown
                buf[:, :, past:end] = part
                new[f"{name}.{i}"] = buf
            kv = KV(new[f"k.{i}"][:, :, :end], new[f"v.{i}"][:, :, :end])  # (B, h, s + n, dh)
            x = _layer(layer, x, h, kv, mask)  # (B, n, D)
        memory = self.norm(x)  # (B, n, D)
        return EncoderOut(memory=memory, mask=torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)), new
