"""Source-target alignments and attention matrices from a model's cross-attention (teacher-forced on its output).

A hypothesis is forced through the decoder (BOS + its tokens + EOS) and each target subword is aligned to the source
subword it attends to most (the last decoder layer's heads averaged for the Transformer), the alignment fairseq's
``--print-alignment`` prints. Pairs are ``i-j``: source subword i, target subword j, both 0-based, EOS excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mt.batch import BOS_ID, EOS_ID, PAD_ID
from mt.models.base import Seq2Seq
from mt.tokenizer import Tokenizer


@dataclass
class AttentionMatrix:
    """One sentence: source and target subword ids (no EOS) and the attention between them."""

    src: list[int]
    tgt: list[int]
    weights: Tensor  # (len(tgt), len(src)) rows: target positions; columns: source positions

    def hard_alignment(self) -> list[tuple[int, int]]:
        """(source index, target index) of each target subword's most attended source subword."""
        if not self.src or not self.tgt:
            return []
        return [(int(i), j) for j, i in enumerate(self.weights.argmax(-1).tolist())]


def format_alignment(pairs: list[tuple[int, int]]) -> str:
    """``i-j i-j ...`` (fairseq / Moses order: source-target)."""
    return " ".join(f"{i}-{j}" for i, j in pairs)


@torch.inference_mode()
def attention_matrices(model: Seq2Seq, sources: list[list[int]], targets: list[list[int]]) -> list[AttentionMatrix]:
    """Teacher-forced cross-attention of each (source ids, target ids) pair, EOS excluded from both (no BOS)."""
    if not sources:
        return []
    device = next(model.parameters()).device
    s_len, t_len = max(len(s) for s in sources) + 1, max(len(t) for t in targets) + 1
    src = torch.full((len(sources), s_len), PAD_ID, dtype=torch.long, device=device)  # (B, S)
    tgt_in = torch.full((len(targets), t_len), PAD_ID, dtype=torch.long, device=device)  # (B, T)
    for b, (s, t) in enumerate(zip(sources, targets, strict=True)):
        src[b, : len(s) + 1] = torch.tensor([*s, EOS_ID])
        tgt_in[b, : len(t) + 1] = torch.tensor([BOS_ID, *t])
    lengths = torch.tensor([len(s) + 1 for s in sources], device=device)  # (B,)
    weights = model.cross_attention(model.encode(src, lengths), tgt_in).float().cpu()  # (B, T, S)
    # row j + 1 of tgt_in holds target token j (row 0 is BOS); it was predicted at position j: use row j
    return [AttentionMatrix(s, t, weights[b, : len(t), : len(s)]) for b, (s, t) in enumerate(zip(sources, targets,
                                                                                                   strict=True))]


def align_texts(model: Seq2Seq, tokenizer: Tokenizer, sources: list[str], translations: list[str],
                max_len: int | None = None, batch_size: int = 64) -> list[AttentionMatrix]:
    """Attention matrices of raw sentence pairs (both tokenized with ``tokenizer``; sources cut to ``max_len``)."""
    src_ids = [s[:max_len] if max_len else s for s in tokenizer.encode(sources)]
    tgt_ids = tokenizer.encode(translations)
    out: list[AttentionMatrix] = []
    for start in range(0, len(sources), batch_size):
        out += attention_matrices(model, src_ids[start:start + batch_size], tgt_ids[start:start + batch_size])
    return out
