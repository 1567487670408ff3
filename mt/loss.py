"""Label-smoothed cross-entropy over target tokens, ignoring padding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mt.batch import PAD_ID


def label_smoothed_nll(logits: Tensor, target: Tensor, smoothing: float) -> tuple[Tensor, Tensor]:
    """logits (B, T, V), target (B, T) -> (summed smoothed loss, summed NLL) over non-pad tokens, in fp32."""
    lprobs = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    mask = target != PAD_ID  # (B, T)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T)
    smooth = -lprobs.mean(-1)  # (B, T): uniform over the vocabulary
    loss = (1.0 - smoothing) * nll + smoothing * smooth
    zero = torch.zeros((), device=logits.device)
    return torch.where(mask, loss, zero).sum(), torch.where(mask, nll, zero).sum()
