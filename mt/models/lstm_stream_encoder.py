"""Unidirectional multi-layer LSTM encoder: the streaming option of the LSTM (``model.bidirectional=false``).

Each encoder state depends only on the tokens before it, so a source prefix's states are final as soon as the
prefix has been read, and reading one more token costs one LSTM step on a constant-size state (``h``, ``c``).
``EncoderOut.final`` is the top layer's forward state after the last real token (the decoder's bridge reads
it); after a prefix, it is the state after that prefix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mt.models.base import EncoderOut, EncoderStream, Seq2Seq
from mt.models.composed import Encoder
from mt.models.dropout import Dropout
from mt.models.rnn import LSTM


class UniLSTMEncoder(Encoder):
    """embedding -> dropout -> forward-only LSTM; memory (B, S, H) with zeros at padded positions.

    Stream state (batch-first): ``h``, ``c`` (B, layers, H), the LSTM state after the tokens read so far.
    """

    streaming = True

    def __init__(self, *, embed: nn.Embedding, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed = embed
        self.output_dim = hidden
        self.hidden, self.layers = hidden, layers
        self.dropout = Dropout(dropout)
        self.lstm = LSTM(embed.embedding_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            batch_first=True)

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        x = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, H)
        last = (src_lengths.to(memory.device) - 1).clamp(min=0)  # (B,)
        final = memory[torch.arange(memory.size(0), device=memory.device), last]  # (B, H)
        return EncoderOut(memory=memory, mask=Seq2Seq.lengths_to_mask(src_lengths.to(src.device), src.size(1)),
                          final=final)

    def start_stream(self, batch_size: int, device: torch.device) -> EncoderStream:
        zeros = torch.zeros(batch_size, self.layers, self.hidden, device=device)  # (B, layers, H)
        return {"h": zeros, "c": zeros}

    def read(self, stream: EncoderStream, tokens: Tensor) -> tuple[EncoderOut, EncoderStream]:
        x = self.dropout(self.embed(tokens))  # (B, n, E)
        state = (stream["h"].transpose(0, 1).contiguous(), stream["c"].transpose(0, 1).contiguous())  # (L, B, H)
        out, (h, c) = self.lstm(x, state)  # out (B, n, H)
        mask = torch.ones(tokens.shape, dtype=torch.bool, device=tokens.device)  # (B, n)
        return EncoderOut(memory=out, mask=mask, final=out[:, -1]), {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}
