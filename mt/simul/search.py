"""Greedy and beam search within the wait-k policy, with the emission schedule of every output.

Conventions are :mod:`mt.search`'s (max_len, min_len, GNMT length penalty, fairseq-style beam with 2K
candidates) plus the policy's:

* The token written at step s (s tokens written before) sees ``min(s + k, |x|)`` real source tokens
  (:mod:`mt.simul.policy`); logits come from a :class:`~mt.simul.steppers.Stepper` (streaming models step
  with a visibility limit, full-sentence models re-encode the visible prefix).
* EOS is forbidden while the source is unfinished (a translation cannot end before its source), except at
  the sentence's max_len step, where only EOS may be written, as in :mod:`mt.search`.
* Emission schedule (``delays``): for each output token, the real source tokens read when it was committed.
  Greedy commits every token when it is written. Beam search commits a token once every live beam of its
  sentence agrees on it (their common prefix), which is when a streaming system could show it; tokens still
  uncommitted when the source has been read completely get the full source length (or, when max_len ends
  a sentence early, the tokens read at that step). Scores rank hypotheses as in :mod:`mt.search`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mt.models.base import Seq2Seq
from mt.search import (
    SearchConfig,
    best_unfinished,
    ended_candidates,
    length_penalty,
    masked_log_probs,
    max_lengths,
    still_active,
    top_candidates,
)
from mt.simul.policy import check_k
from mt.simul.steppers import Stepper, make_stepper


@dataclass
class SimulHypothesis:
    """One simultaneous output: tokens (no BOS/EOS), their emission schedule, scores, source length."""

    tokens: list[int]
    delays: list[int]  # per token: real source tokens read when it was committed (non-decreasing)
    score: float  # length-normalised (GNMT), used for ranking
    log_prob: float  # sum of token log-probabilities, EOS included
    src_len: int  # real source tokens |x| (EOS not counted)


@dataclass
class _Finished:
    """A hypothesis that wrote EOS: its tokens, scores and how many source tokens were read at its end."""

    tokens: list[int]
    score: float  # length-normalised (GNMT), for ranking
    log_prob: float
    end: int  # real source tokens read when EOS was written


def _read(step: int, k: int, n_real: Tensor) -> Tensor:
    """Real source tokens read before writing at ``step``: (N,)."""
    return (n_real.new_full(n_real.shape, step + k)).minimum(n_real)


@torch.inference_mode()
def simul_greedy(model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int, cfg: SearchConfig,
                 stepper: Stepper | None = None) -> list[SimulHypothesis]:
    """src (B, S), src_lengths (B,) EOS included -> one wait-k hypothesis per sentence (the argmax path)."""
    k = check_k(k)
    batch, device = src.size(0), src.device
    stepper = stepper or make_stepper(model, src, src_lengths, k)
    n_real = src_lengths - 1  # (B,)
    max_len = max_lengths(src_lengths, cfg, model.max_target_len).to(device)  # (B,)
    alive = torch.arange(batch, device=device)  # (N,) sentence of each active row
    prefix = torch.full((batch, 1), model.bos_id, dtype=torch.long, device=device)  # (N, 1 + t)
    log_prob = torch.zeros(batch, device=device)  # (N,)
    delays: list[list[int]] = [[] for _ in range(batch)]
    results: list[SimulHypothesis | None] = [None] * batch
    for step in range(int(max_len.max()) + 1):
        read = _read(step, k, n_real[alive])  # (N,)
        lprobs = masked_log_probs(model, stepper.logits(prefix, step), step, max_len[alive], cfg,
                                  read < n_real[alive])  # (N, V): no EOS before the whole source is read
        best_lp, tokens = lprobs.max(dim=-1)  # (N,), (N,)
        log_prob = log_prob + best_lp
        prefix = torch.cat([prefix, tokens[:, None]], dim=1)  # (N, 2 + t)
        done = tokens == model.eos_id  # (N,)
        for row, (s, r, d) in enumerate(zip(alive.tolist(), read.tolist(), done.tolist(), strict=True)):
            if d:
                lp = float(log_prob[row])
                results[s] = SimulHypothesis(prefix[row, 1:-1].tolist(), delays[s], lp / length_penalty(
                    step + 1, cfg.len_penalty), lp, int(n_real[s]))
            else:
                delays[s].append(r)
        keep = (~done).nonzero()[:, 0]  # (N',)
        if keep.numel() == 0:
            break
        if keep.numel() < done.numel():
            alive, prefix, log_prob = alive[keep], prefix[keep], log_prob[keep]
            stepper.reorder(keep)
    return results  # type: ignore[return-value]


@torch.inference_mode()
def simul_beam(model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int, cfg: SearchConfig
               ) -> list[list[SimulHypothesis]]:
    """src (B, S), src_lengths (B,) -> per sentence, its n_best wait-k hypotheses, best first."""
    if not 1 <= cfg.n_best <= cfg.beam_size:
        raise ValueError(f"need 1 <= n_best <= beam_size, got n_best={cfg.n_best}, beam_size={cfg.beam_size}")
    k = check_k(k)
    batch, beam, device = src.size(0), cfg.beam_size, src.device
    stepper = make_stepper(model, src, src_lengths, k)
    stepper.reorder(torch.arange(batch, device=device).repeat_interleave(beam))  # rows (B * K)
    n_real = src_lengths - 1  # (B,)
    max_len = max_lengths(src_lengths, cfg, model.max_target_len).to(device)  # (B,)
    alive = torch.arange(batch, device=device)  # (N,) sentence of each active beam group
    prefix = torch.full((batch * beam, 1), model.bos_id, dtype=torch.long, device=device)  # (N * K, 1 + t)
    scores = torch.zeros(batch, beam, device=device)  # (N, K) cumulative log-probs
    scores[:, 1:] = -torch.inf  # all beams start identical: expand only the first
    committed: list[list[int]] = [[] for _ in range(batch)]  # per sentence: delays of its committed tokens
    finished: list[list[_Finished]] = [[] for _ in range(batch)]
    for step in range(int(max_len.max()) + 1):
        n = alive.numel()
        read = _read(step, k, n_real[alive])  # (N,)
        unfinished = read < n_real[alive]  # (N,)
        lprobs = masked_log_probs(model, stepper.logits(prefix, step), step, max_len[alive].repeat_interleave(beam),
                                  cfg, unfinished.repeat_interleave(beam))  # (N * K, V)
        top_scores, top_beam, top_tok, is_eos = top_candidates(scores, lprobs, beam, model.eos_id)  # (N, 2K) each

        penalty = length_penalty(step + 1, cfg.len_penalty)
        alive_list, read_list = alive.tolist(), read.tolist()
        for end in ended_candidates(is_eos, top_scores, top_beam, prefix[:, 1:], beam):
            hyps = finished[alive_list[end.group]]
            if len(hyps) < beam:
                hyps.append(_Finished(end.tokens, end.log_prob / penalty, end.log_prob, read_list[end.group]))

        scores, rows, tokens = best_unfinished(top_scores, top_beam, top_tok, is_eos, beam)
        active = still_active([len(finished[s]) for s in alive_list], beam, step, max_len[alive])  # (N,)
        if not bool(active.any()):
            break
        prefix = torch.cat([prefix[rows], tokens[:, None]], dim=1)  # (N * K, 2 + t)
        _commit(prefix.view(n, beam, -1)[:, :, 1:], scores, unfinished, read_list, alive_list, committed)
        rows = rows.view(n, beam)[active].view(-1)  # (N' * K,)
        prefix = prefix.view(n, beam, -1)[active].flatten(0, 1)  # (N' * K, 2 + t)
        scores, alive = scores[active], alive[active]  # (N', K), (N',)
        stepper.reorder(rows)
    out = []
    for s, hyps in enumerate(finished):
        best = sorted(hyps, key=lambda h: -h.score)[: cfg.n_best]
        out.append([SimulHypothesis(h.tokens, _schedule(committed[s], len(h.tokens), h.end), h.score, h.log_prob,
                                    int(n_real[s])) for h in best])
    return out


def _commit(seqs: Tensor, scores: Tensor, unfinished: Tensor, read: list[int], alive: list[int],
            committed: list[list[int]]) -> None:
    """While a sentence's source is unfinished, commit the tokens all its live beams agree on.

    seqs (N, K, t) written tokens of each beam; scores (N, K) (-inf = not a live beam); read: tokens read.
    """
    live = torch.isfinite(scores)  # (N, K)
    for i in unfinished.nonzero()[:, 0].tolist():
        beams = seqs[i][live[i]]  # (K', t)
        if beams.size(0) == 0:
            continue
        agree = (beams == beams[:1]).all(dim=0)  # (t,) positions where every live beam has the same token
        common = int(agree.long().cumprod(0).sum())
        done = committed[alive[i]]
        done.extend([read[i]] * max(0, common - len(done)))


def _schedule(committed: list[int], length: int, end: int) -> list[int]:
    """The delays of a hypothesis of ``length`` tokens: its committed prefix, then ``end`` for the rest."""
    return (committed[:length] + [end] * max(0, length - len(committed)))


def translate_wait_k(model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int, cfg: SearchConfig
                     ) -> list[SimulHypothesis]:
    """Best wait-k hypothesis per sentence: greedy when beam_size == 1, beam search otherwise.

    An empty source (only EOS) gives an empty translation with no delays (as :func:`mt.translate.decode_batch`).
    """
    if cfg.beam_size == 1:
        hyps = simul_greedy(model, src, src_lengths, k, cfg)
    else:
        hyps = [h[0] for h in simul_beam(model, src, src_lengths, k, cfg)]
    return [SimulHypothesis([], [], h.score, h.log_prob, 0) if int(n) <= 1 else h
            for h, n in zip(hyps, src_lengths.tolist(), strict=True)]
