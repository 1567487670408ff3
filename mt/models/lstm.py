"""LSTM encoder-decoder with attention (Luong et al. 2015): bidirectional LSTM encoder + attentional LSTM decoder.

The builder behind ``conf/model/lstm.yaml``: its keyword arguments are the config keys; the parts live in
``lstm_encoder.py`` and ``lstm_decoder.py``.
"""

from __future__ import annotations

from mt.errors import MTError
from mt.models.composed import EncoderDecoder, make_embeddings
from mt.models.lstm_decoder import AttnLSTMDecoder
from mt.models.lstm_encoder import LSTMEncoder
from mt.models.lstm_stream_encoder import UniLSTMEncoder


class LSTMSeq2Seq(EncoderDecoder):
    """Bidirectional-LSTM encoder (or, ``bidirectional=false``, a streaming forward-only one), attentional LSTM
    decoder started from the encoder's final states."""

    def __init__(self, *, vocab_size: int, embed_dim: int, encoder_hidden: int, encoder_layers: int,
                 decoder_hidden: int, decoder_layers: int, attention: str, input_feeding: bool, dropout: float,
                 share_embeddings: bool, tie_output: bool, bridge: str, bidirectional: bool) -> None:
        if not bidirectional and bridge == "mean":
            raise MTError("bridge=mean averages the whole source, which a streaming (bidirectional=false) encoder "
                          "does not have yet; use model.bridge=final or none")
        src_embed, tgt_embed = make_embeddings(vocab_size, embed_dim, share_embeddings)
        encoder_cls = LSTMEncoder if bidirectional else UniLSTMEncoder
        encoder = encoder_cls(embed=src_embed, hidden=encoder_hidden, layers=encoder_layers, dropout=dropout)
        decoder = AttnLSTMDecoder(embed=tgt_embed, memory_dim=encoder.output_dim, hidden=decoder_hidden,
                                  layers=decoder_layers, attention=attention, input_feeding=input_feeding,
                                  dropout=dropout, tie_output=tie_output, bridge=bridge)
        super().__init__(vocab_size=vocab_size, family="recurrent", src_embed=src_embed, tgt_embed=tgt_embed,
                         encoder=encoder, decoder=decoder)
