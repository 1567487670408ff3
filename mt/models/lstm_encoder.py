"""Bidirectional multi-layer LSTM encoder over packed (unsorted) sequences."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mt.models.base import EncoderOut, Seq2Seq
from mt.models.composed import Encoder
from mt.models.dropout import Dropout
from mt.models.rnn import LSTM


class LSTMEncoder(Encoder):
    """embedding -> dropout -> bidirectional LSTM; memory (B, S, 2H) with zeros at padded positions.

    ``EncoderOut.final`` (B, 2H) is the top layer's final forward state (its output at the last real
    position) next to its final backward state (its output at position 0), for decoders that start from it.
    """

    def __init__(self, *, embed: nn.Embedding, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed = embed
        self.output_dim = 2 * hidden
        self.dropout = Dropout(dropout)
        self.lstm = LSTM(embed.embedding_dim, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                            bidirectional=True, batch_first=True)

    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        x = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, 2H)
        half = memory.size(-1) // 2
        last = (src_lengths.to(memory.device) - 1).clamp(min=0)  # (B,)
        rows = torch.arange(memory.size(0), device=memory.device)
        final = torch.cat([memory[rows, last, :half], memory[:, 0, half:]], dim=-1)  # (B, 2H)
        return EncoderOut(memory=memory, mask=Seq2Seq.lengths_to_mask(src_lengths.to(src.device), src.size(1)),
                          final=final)
