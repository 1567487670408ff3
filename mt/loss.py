"""Label-smoothed cross-entropy over target tokens, ignoring padding.

Two forms with the same value: :func:`label_smoothed_nll` from logits, and :func:`projected_label_smoothed_nll`
from the decoder's features and its vocabulary projection, fused and chunked: it computes the logits of a few
hundred target tokens at a time, their loss and, when training, their gradients right away, so the fp32
(tokens, vocabulary) log-probabilities and their gradient never exist whole and padded positions cost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mt.batch import PAD_ID

if TYPE_CHECKING:
    from mt.batch import Batch
    from mt.models.base import Seq2Seq


def label_smoothed_nll(logits: Tensor, target: Tensor, smoothing: float) -> tuple[Tensor, Tensor]:
    """logits (B, T, V), target (B, T) -> (summed smoothed loss, summed NLL) over non-pad tokens, in fp32 (fp64
    logits: fp64)."""
    lprobs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (B, T, V)
    mask = target != PAD_ID  # (B, T)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # (B, T)
    smooth = -lprobs.mean(-1)  # (B, T): uniform over the vocabulary
    loss = (1.0 - smoothing) * nll + smoothing * smooth
    zero = torch.zeros((), device=logits.device)
    return torch.where(mask, loss, zero).sum(), torch.where(mask, nll, zero).sum()


def projected_label_smoothed_nll(features: Tensor, output: nn.Linear, target: Tensor, smoothing: float,
                                 chunk: int) -> tuple[Tensor, Tensor]:
    """features (B, T, D), target (B, T) -> (summed smoothed loss, summed NLL) of ``output(features)``, in fp32.

    The same values as ``label_smoothed_nll(output(features), target, smoothing)``; the matrix products run in the
    autocast dtype when autocast is on (as ``output`` would), everything after them in fp32 (fp64 inputs: fp64).
    ``chunk``: target tokens per block of logits (memory ~ chunk x vocabulary x 4 bytes). Only the smoothed loss
    is differentiable.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 target tokens, got {chunk}")
    mask = target != PAD_ID  # (B, T)
    rows, labels = features[mask], target[mask]  # (N, D), (N,)
    device = features.device.type
    mm_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else output.weight.dtype
    return _ProjectedLoss.apply(rows, output.weight, output.bias, labels, float(smoothing), int(chunk), mm_dtype,
                                torch.is_grad_enabled())


def output_loss(features: Tensor, output: nn.Linear, target: Tensor, smoothing: float,
                chunk: int | None) -> tuple[Tensor, Tensor]:
    """(summed smoothed loss, summed NLL) of ``output(features)`` (B, T, D) against target (B, T): fused in blocks
    of ``chunk`` target tokens (:func:`projected_label_smoothed_nll`), or, chunk None, from the whole logits."""
    if chunk is None:
        return label_smoothed_nll(output(features), target, smoothing)
    return projected_label_smoothed_nll(features, output, target, smoothing, chunk)


def batch_loss(model: Seq2Seq, batch: Batch, smoothing: float, chunk: int | None) -> tuple[Tensor, Tensor]:
    """(summed smoothed loss, summed NLL) of ``batch`` under full-sentence teacher forcing, as training computes it
    (``chunk``: see :func:`output_loss`); for tools that time or measure a training step."""
    features = model.features(model.encode(batch.src, batch.src_lengths), batch.tgt_in)  # (B, T, D)
    return output_loss(features, model.output_layer, batch.tgt_out, smoothing, chunk)


class _ProjectedLoss(torch.autograd.Function):
    """Chunked vocabulary projection + label-smoothed NLL; gradients are computed in forward, scaled in backward.

    Per chunk of c rows, with logits z = h W^T + b and p = softmax(z): loss = lse(z) - (1 - e) z_y - e mean(z),
    and d loss / d z = p - (1 - e) onehot(y) - e / V, which gives d h = G W, d W += G^T h, d b += sum G.
    """

    @staticmethod
    def forward(ctx, rows: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor, smoothing: float,
                chunk: int, mm_dtype: torch.dtype, grads: bool) -> tuple[Tensor, Tensor]:
        with torch.autocast(rows.device.type, enabled=False):
            return _projected_forward(ctx, rows, weight, bias, labels, smoothing, chunk, mm_dtype, grads)

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_nll: Tensor):  # type: ignore[override]
        grads = [None if dtype is None else (g * grad_loss).to(dtype)
                 for g, dtype in zip(ctx.saved_tensors, ctx.dtypes, strict=True)]  # rows, weight, bias
        return (*grads, None, None, None, None, None)


def _projected_forward(ctx, rows: Tensor, weight: Tensor, bias: Tensor | None, labels: Tensor, smoothing: float,
                       chunk: int, mm_dtype: torch.dtype, grads: bool) -> tuple[Tensor, Tensor]:
    """The work of :class:`_ProjectedLoss`'s forward (autocast off): sums, and the gradients saved on ``ctx``."""
    n, vocab = rows.size(0), weight.size(0)
    acc = torch.promote_types(mm_dtype, torch.float32)  # fp32 (fp64 stays fp64)
    need_rows, need_weight, need_bias = (grads and ctx.needs_input_grad[i] for i in range(3))
    w = weight.to(mm_dtype)  # (V, D)
    loss_sum, nll_sum = rows.new_zeros((), dtype=acc), rows.new_zeros((), dtype=acc)
    empty = rows.new_empty(0, dtype=acc)
    grad_rows = rows.new_empty(rows.shape, dtype=acc) if need_rows else empty  # (N, D)
    grad_weight = weight.new_zeros(weight.shape, dtype=acc) if need_weight else empty  # (V, D)
    grad_bias = weight.new_zeros(vocab, dtype=acc) if need_bias else empty  # (V,)
    for start in range(0, n, chunk):
        h = rows[start:start + chunk].to(mm_dtype)  # (c, D)
        y = labels[start:start + chunk, None]  # (c, 1)
        z = (h @ w.T).to(acc)  # (c, V)
        if bias is not None:
            z += bias.to(acc)
        top = z.amax(-1, keepdim=True)  # (c, 1)
        mean = z.mean(-1)  # (c,)
        target_z = z.gather(-1, y).squeeze(-1)  # (c,)
        p = z.sub_(top).exp_()  # (c, V) in place: exp(z - max)
        total = p.sum(-1, keepdim=True)  # (c, 1)
        lse = (top + total.log()).squeeze(-1)  # (c,)
        nll = lse - target_z
        loss_sum += ((1.0 - smoothing) * nll + smoothing * (lse - mean)).sum()
        nll_sum += nll.sum()
        if not (need_rows or need_weight or need_bias):
            continue
        g = p.div_(total).sub_(smoothing / vocab)  # (c, V): softmax - e / V
        g.scatter_add_(-1, y, g.new_full(y.shape, smoothing - 1.0))  # - (1 - e) at the label
        gm = g.to(mm_dtype)
        if need_rows:
            grad_rows[start:start + chunk] = gm @ w  # (c, D)
        if need_weight:
            if mm_dtype == acc:
                grad_weight.addmm_(gm.T, h)  # (V, D)
            else:
                grad_weight += (gm.T @ h).to(acc)
        if need_bias:
            grad_bias += g.sum(0)
    ctx.mark_non_differentiable(nll_sum)
    ctx.save_for_backward(grad_rows, grad_weight, grad_bias)
    ctx.dtypes = tuple(t.dtype if need else None for t, need in
                       ((rows, need_rows), (weight, need_weight), (bias, need_bias)))
    return loss_sum, nll_sum
