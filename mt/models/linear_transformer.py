"""Linear-attention Transformer (Katharopoulos et al. 2020): the Transformer's parts with linear self-attention.

The builder behind ``conf/model/linear_transformer.yaml``. Encoder self-attention and decoder causal
self-attention are kernelized linear attention (``linear_attention.py``); the decoder's self-attention state is
a constant-size recurrence (``self_s.{i}`` (B, h, dh, dh), ``self_z.{i}`` (B, h, dh)), not a growing cache.
Cross-attention is ``cross_attention: softmax`` (implemented by ``attention_impl``) or ``linear``; its keys and
values are computed once per sentence either way, so its per-step cost does not grow with the position.
Decoding variants: "recurrent" (default) and "uncached" (recomputes the prefix every step).
"""

from __future__ import annotations

from mt.models.composed import EncoderDecoder, make_embeddings
from mt.models.transformer_decoder import TransformerDecoder
from mt.models.transformer_encoder import TransformerEncoder
from mt.models.transformer_layers import LayerConfig


class LinearTransformer(EncoderDecoder):
    """Transformer seq2seq with linear self-attention; sizes and keys as ``Transformer`` plus the two below.

    cross_attention: softmax | linear. chunk_size: positions per chunk of the parallel causal form.
    """

    def __init__(self, *, vocab_size: int, d_model: int, n_heads: int, ffn_dim: int, encoder_layers: int,
                 decoder_layers: int, dropout: float, attention_dropout: float, activation_dropout: float,
                 pre_norm: bool, share_embeddings: bool, max_positions: int, cross_attention: str,
                 attention_impl: str, chunk_size: int) -> None:
        src_embed, tgt_embed = make_embeddings(vocab_size, d_model, share_embeddings)
        layer = LayerConfig(d_model=d_model, n_heads=n_heads, ffn_dim=ffn_dim, dropout=dropout,
                            attention_dropout=attention_dropout, activation_dropout=activation_dropout,
                            pre_norm=pre_norm, chunk_size=chunk_size)
        encoder = TransformerEncoder(embed=src_embed, layer=layer, layers=encoder_layers, max_positions=max_positions,
                                     self_attention="linear", attention_impl=attention_impl)
        decoder = TransformerDecoder(embed=tgt_embed, layer=layer, layers=decoder_layers, max_positions=max_positions,
                                     self_attention="linear", cross_attention=cross_attention,
                                     attention_impl=attention_impl, tie_output=share_embeddings)
        super().__init__(vocab_size=vocab_size, family="linear_transformer", src_embed=src_embed,
                         tgt_embed=tgt_embed, encoder=encoder, decoder=decoder)
