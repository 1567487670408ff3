"""Transformer encoder-decoder (Vaswani et al. 2017), pre-norm by default, with a key/value cache.

The builder behind ``conf/model/transformer.yaml``: its keyword arguments are the config keys; the parts live
in ``transformer_encoder.py`` and ``transformer_decoder.py`` (state layout documented there). Decoding
variants: "cached" (default) and "uncached" (recomputes the prefix every step).
"""

from __future__ import annotations

from mt.models.causal_encoder import CausalTransformerEncoder
from mt.models.composed import EncoderDecoder, make_embeddings
from mt.models.transformer_decoder import TransformerDecoder
from mt.models.transformer_encoder import TransformerEncoder
from mt.models.transformer_layers import LayerConfig


class Transformer(EncoderDecoder):
    """Transformer seq2seq; one embedding matrix for source, target and output when share_embeddings."""

    def __init__(self, *, vocab_size: int, d_model: int, n_heads: int, ffn_dim: int, encoder_layers: int,
                 decoder_layers: int, dropout: float, attention_dropout: float, activation_dropout: float,
                 pre_norm: bool, share_embeddings: bool, max_positions: int, attention_impl: str,
                 causal_encoder: bool) -> None:
        src_embed, tgt_embed = make_embeddings(vocab_size, d_model, share_embeddings)
        layer = LayerConfig(d_model=d_model, n_heads=n_heads, ffn_dim=ffn_dim, dropout=dropout,
                            attention_dropout=attention_dropout, activation_dropout=activation_dropout,
                            pre_norm=pre_norm, chunk_size=None)
        encoder_cls = CausalTransformerEncoder if causal_encoder else TransformerEncoder  # causal = streaming
        encoder = encoder_cls(embed=src_embed, layer=layer, layers=encoder_layers, max_positions=max_positions,
                                     self_attention="softmax", attention_impl=attention_impl)
        decoder = TransformerDecoder(embed=tgt_embed, layer=layer, layers=decoder_layers, max_positions=max_positions,
                                     self_attention="softmax", cross_attention="softmax",
                                     attention_impl=attention_impl, tie_output=share_embeddings)
        super().__init__(vocab_size=vocab_size, family="transformer", src_embed=src_embed, tgt_embed=tgt_embed,
                         encoder=encoder, decoder=decoder)
