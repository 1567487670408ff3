"""Source-only decoder state kept once per sentence while the rest has one row per hypothesis.

Beam search keeps the entries a model names in :meth:`mt.models.base.Seq2Seq.source_state_keys` (cross-attention
keys and values, an attentional LSTM's memory) with one row per sentence, and everything else with ``g`` rows per
sentence (sentence i owns rows ``i * g .. i * g + g - 1``). Attention then runs the ``g`` rows' queries of a
sentence together against its one copy of the source: (n * g, T, D) queries become (n, g * T, D), which is exact
because every query attends independently. These helpers do the regrouping; ``g = 1`` leaves tensors unchanged.
"""

from __future__ import annotations

from torch import Tensor


def group_rows(x: Tensor, n: int) -> Tensor:
    """x (n * g, T, ...) -> (n, g * T, ...): the rows that share one source row, as one row of g * T queries."""
    return x.reshape(n, -1, *x.shape[2:])


def ungroup_rows(x: Tensor, rows: int) -> Tensor:
    """Inverse of :func:`group_rows`: x (n, g * T, ...) -> (rows, T, ...) with rows = n * g."""
    return x.reshape(rows, -1, *x.shape[2:])


def group_mask(mask: Tensor, n: int, t: int) -> Tensor:
    """An attention mask for grouped queries.

    mask: bool (R, T or 1, S) or (R, 1, T or 1, S) (a heads dimension of 1), R = n (one row per sentence, the
    same for all its queries: its query dimension must be 1) or n * g (one row per hypothesis); t: queries per
    hypothesis -> (n, 1 or g * t, S) / (n, 1, 1 or g * t, S).
    """
    if mask.size(0) == n:
        if mask.size(-2) != 1:
            raise ValueError(f"a mask with one row per sentence must be the same for every query, got {tuple(mask.shape)}")
        return mask
    grouped = mask.expand(*mask.shape[:-2], t, mask.size(-1)).reshape(n, -1, mask.size(-1))  # (n, g * t, S)
    return grouped if mask.dim() == 3 else grouped[:, None]  # (n, 1, g * t, S)


def per_row(x: Tensor, rows: int) -> Tensor:
    """A source-only entry x (n, ...) with one row per sentence -> (rows, ...) with one row per hypothesis."""
    return x if x.size(0) == rows else x.repeat_interleave(rows // x.size(0), dim=0)
