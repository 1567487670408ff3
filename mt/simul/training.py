"""Wait-k training (Ma et al. 2019): teacher forcing where target position t attends only to the source
prefix the policy will have read when it writes (``wait_k_visibility``), optionally with k sampled per batch
(multi-path wait-k, Elbayad et al. 2020; :func:`mt.simul.policy.sample_k`).

With a streaming encoder this trains exactly what wait-k decoding computes: the encoder states of a prefix
do not depend on later tokens, and the decoder's initial state comes from the encoder's state after the
first visible prefix (a recurrent bridge would otherwise read the whole sentence). With a full-sentence
(bidirectional) encoder the decoder is masked but every encoder state has seen the whole source: a known
leak, warned about once; decode such a model with re-encoding (:mod:`mt.simul.steppers`), as the usual
test-time wait-k baseline does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import Tensor

from mt.batch import Batch
from mt.models.base import EncoderOut, Seq2Seq
from mt.simul.policy import sample_k, wait_k_visibility

log = logging.getLogger(__name__)
_warned = False


def wait_k_features(model: Seq2Seq, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, k: int) -> Tensor:
    """Teacher-forced decoder features under wait-k. src (B, S), src_lengths (B,), tgt_in (B, T) -> (B, T, D)
    (project with ``model.output_layer`` for the logits)."""
    global _warned
    if not model.traits.streaming and not _warned:
        log.warning("train.wait_k with a full-sentence encoder: the decoder is masked, but the encoder states see "
                    "the whole source during training; use model.bidirectional=false (LSTM) or "
                    "model.causal_encoder=true (Transformer) for streaming")
        _warned = True
    visible = wait_k_visibility(src_lengths, tgt_in.size(1), k)  # (B, T)
    enc = model.encode(src, src_lengths)
    if enc.final is not None:  # the decoder starts from the encoder's state after the first visible prefix
        first = visible[:, 0]  # (B,)
        enc = EncoderOut(memory=enc.memory, mask=enc.mask,
                         final=model.encode(src[:, : int(first.max())], first).final)
    return model.features(enc, tgt_in, visible)  # (B, T, D)


def training_features(model: Seq2Seq, batch: Batch, train_cfg: Mapping, sample: bool) -> Tensor:
    """Teacher-forced decoder features (B, T, D) of ``batch`` as the ``train`` config asks: full-sentence, or wait-k when
    ``train.wait_k`` is set; with ``train.wait_k_multipath`` and ``sample`` (training steps) k is drawn per batch
    from 1..wait_k, otherwise (validation loss) k = wait_k. Configs from before these options mean full-sentence.
    """
    max_k = train_cfg.get("wait_k")
    if max_k is None:
        return model.features(model.encode(batch.src, batch.src_lengths), batch.tgt_in)
    k = sample_k(int(max_k), sample and bool(train_cfg.get("wait_k_multipath", False)))
    return wait_k_features(model, batch.src, batch.src_lengths, batch.tgt_in, k)
