"""Hybrid (Chen et al. 2018, "The Best of Both Worlds"): Transformer encoder + attentional LSTM decoder.

The builder behind ``conf/model/hybrid.yaml``, composed from ``transformer_encoder.py`` and
``lstm_decoder.py``; one embedding size (``d_model``) on both sides so the embeddings can be shared.
"""

from __future__ import annotations

from mt.errors import MTError
from mt.models.composed import EncoderDecoder, make_embeddings
from mt.models.lstm_decoder import AttnLSTMDecoder
from mt.models.transformer_encoder import TransformerEncoder
from mt.models.transformer_layers import LayerConfig


class Hybrid(EncoderDecoder):
    """Transformer encoder (``d_model``, ``n_heads``, ``ffn_dim``, ``encoder_layers``, ...) + LSTM decoder
    (``decoder_hidden``, ``decoder_layers``, ``attention``, ``input_feeding``, ``bridge``, ``tie_output``)."""

    def __init__(self, *, vocab_size: int, d_model: int, n_heads: int, ffn_dim: int, encoder_layers: int,
                 attention_dropout: float, activation_dropout: float, pre_norm: bool, max_positions: int,
                 attention_impl: str, decoder_hidden: int, decoder_layers: int, attention: str, input_feeding: bool,
                 bridge: str, dropout: float, share_embeddings: bool, tie_output: bool) -> None:
        if bridge == "final":
            raise MTError("model.bridge=final starts the decoder from an LSTM encoder's final states, which a "
                          "Transformer encoder does not have; use model.bridge=mean or none")
        src_embed, tgt_embed = make_embeddings(vocab_size, d_model, share_embeddings)
        layer = LayerConfig(d_model=d_model, n_heads=n_heads, ffn_dim=ffn_dim, dropout=dropout,
                            attention_dropout=attention_dropout, activation_dropout=activation_dropout,
                            pre_norm=pre_norm, chunk_size=None)
        encoder = TransformerEncoder(embed=src_embed, layer=layer, layers=encoder_layers, max_positions=max_positions,
                                     self_attention="softmax", attention_impl=attention_impl)
        decoder = AttnLSTMDecoder(embed=tgt_embed, memory_dim=encoder.output_dim, hidden=decoder_hidden,
                                  layers=decoder_layers, attention=attention, input_feeding=input_feeding,
                                  dropout=dropout, tie_output=tie_output, bridge=bridge)
        super().__init__(vocab_size=vocab_size, family="hybrid", src_embed=src_embed, tgt_embed=tgt_embed,
                         encoder=encoder, decoder=decoder)
