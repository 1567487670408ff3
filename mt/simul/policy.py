"""The wait-k policy (Ma et al. 2019, STACL): target token t (1-based) is written after reading the first
min(t + k - 1, |x|) source tokens.

Counting convention: |x| is the number of real source subwords (the EOS the data pipeline appends is not a
token that arrives; it marks the end of the stream and becomes visible together with the last real token).
In encoder positions (EOS included, ``src_lengths = |x| + 1``) a target position therefore sees
``t + k - 1`` positions while the source is unfinished and all ``|x| + 1`` once it has been read.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

from mt.errors import MTError


def check_k(k: int) -> int:
    """``k`` as an int, refused (one line) when below 1."""
    if int(k) < 1:
        raise MTError(f"wait_k={k}: k must be at least 1 (k source tokens are read before the first target token)")
    return int(k)


def tokens_read(step: int, k: int, src_len: int) -> int:
    """Real source tokens read before writing target token ``step + 1`` (``step`` = tokens already written)."""
    return min(step + k, src_len)


def wait_k_visibility(src_lengths: Tensor, tgt_len: int, k: int) -> Tensor:
    """Encoder positions each target position may attend to under wait-k (the ``src_visible`` of a decoder).

    src_lengths (B,) encoder lengths, EOS included -> (B, T) int64: position i (input token i, predicting
    target token i + 1) sees ``i + k`` positions, or all ``src_lengths`` once ``i + k >= src_lengths - 1``.
    """
    k = check_k(k)
    read = torch.arange(tgt_len, device=src_lengths.device)[None, :] + k  # (1, T)
    lengths = src_lengths[:, None]  # (B, 1)
    return torch.where(read >= lengths - 1, lengths, read)  # (B, T)


def step_visibility(src_lengths: Tensor, step: int, k: int) -> Tensor:
    """The visibility of one decoding step (``step`` tokens already written): (B,) int64."""
    return wait_k_visibility(src_lengths, step + 1, k)[:, step]  # (B,)


def sample_k(max_k: int, multipath: bool, rng: random.Random | None = None) -> int:
    """The k of one training batch: ``max_k``, or uniform in 1..max_k for multi-path training (Elbayad et al.
    2020, "Efficient wait-k models"). ``rng`` None draws from Python's global generator, which training
    checkpoints save and restore, so a resumed run draws the same sequence."""
    max_k = check_k(max_k)
    if not multipath:
        return max_k
    return (rng or random).randint(1, max_k)
