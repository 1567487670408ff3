"""The batch that flows from the data pipeline into every model, batch-first."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Fixed special ids, shared by the tokenizer, the data pipeline and the models.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass
class Batch:
    """A padded batch of sentence pairs.

    ``tgt_in`` is ``BOS y`` and ``tgt_out`` is ``y EOS`` (teacher forcing); both are padded with PAD_ID.
    For a source-only batch (translation of raw text) ``tgt_in``/``tgt_out`` are ``None``.
    """

    src: Tensor  # (B, S) int64, PAD_ID-padded source ids (EOS-terminated)
    src_lengths: Tensor  # (B,) int64, true source lengths
    ids: Tensor  # (B,) int64, index of each sentence in its split (original order)
    tgt_in: Tensor | None = None  # (B, T) int64
    tgt_out: Tensor | None = None  # (B, T) int64

    @property
    def size(self) -> int:
        return self.src.size(0)

    @property
    def n_tgt_tokens(self) -> int:
        """Number of real (non-pad) target tokens, EOS included."""
        return 0 if self.tgt_out is None else int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if t is None else t.to(device) for t in
                       (self.src, self.src_lengths, self.ids, self.tgt_in, self.tgt_out)))
