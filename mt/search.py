"""Greedy and beam search over any :class:`~mt.models.base.Seq2Seq`, using only its interface.

Conventions (shared by greedy and beam search):

* ``max_len = floor(max_len_a * src_length + max_len_b)`` output tokens per sentence, EOS not counted, where
  ``src_length`` is the sentence's entry of ``src_lengths``: its true length as the batch gives it, i.e.
  including the EOS the data pipeline appends. It is raised to at least ``min_len``. At step ``max_len``
  only EOS may be emitted (with its own log-probability).
* ``min_len``: EOS is forbidden until ``min_len`` tokens have been emitted. PAD and BOS are never emitted.
* Scores: ``log_prob`` is the sum of token log-probabilities including the final EOS; ``score`` is
  ``log_prob / ((5 + n) / 6) ** len_penalty`` (GNMT), n = number of emitted tokens including EOS.
  ``len_penalty = 0`` ranks by the raw sum.
* Beam search follows fairseq: each step takes the top ``2 * beam`` candidates over the beam; EOS candidates
  ranked within the first ``beam`` are finished, and the best ``beam`` non-EOS candidates stay alive, so
  finishing hypotheses never starve the beam. A sentence is done when ``beam`` hypotheses have finished or
  it reaches its ``max_len``; done sentences leave the batch (their state rows are dropped), and the loop
  stops when every sentence is done. The state entries the model names in ``source_state_keys``
  (cross-attention memory, the same in every hypothesis of a sentence) stay one row per sentence: never
  copied per hypothesis, only shrunk when sentences leave.
* Every sentence's rows are computed independently of the others, so the result does not depend on the
  batch composition or padding (up to floating-point noise).

Both functions run under ``torch.inference_mode`` themselves; the caller puts the model in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mt.models.base import DecoderState, Seq2Seq, reorder_state


@dataclass
class SearchConfig:
    """Decoding options (the ``decode`` node of the config)."""

    beam_size: int
    len_penalty: float  # GNMT alpha; 0 = raw sum of log-probs
    max_len_a: float  # max output tokens = max_len_a * src_length + max_len_b (EOS not counted)
    max_len_b: int
    min_len: int  # EOS forbidden before this many output tokens
    n_best: int  # hypotheses returned per sentence (<= beam_size)
    wait_k: int | None = None  # None: read the whole source first; K: the wait-K policy (mt.simul.search)


@dataclass
class Hypothesis:
    """One output: tokens without BOS/EOS, the length-normalised score used for ranking, the raw sum."""

    tokens: list[int]
    score: float
    log_prob: float


def top_candidates(scores: Tensor, lprobs: Tensor, beam: int, eos_id: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The best 2K continuations of each sentence's K beams, best first.

    scores (N, K) beam scores, lprobs (N * K, V) -> their scores, source beams, tokens and EOS flags, each (N, 2K).
    """
    n, vocab = scores.size(0), lprobs.size(-1)
    cand = scores[:, :, None] + lprobs.view(n, beam, vocab)  # (N, K, V)
    top_scores, top_idx = cand.view(n, beam * vocab).topk(2 * beam, dim=1)  # (N, 2K)
    top_tok = top_idx % vocab  # (N, 2K)
    is_eos = (top_tok == eos_id) & torch.isfinite(top_scores)  # (N, 2K)
    return top_scores, torch.div(top_idx, vocab, rounding_mode="floor"), top_tok, is_eos


@dataclass
class Ended:
    """A candidate that wrote EOS: its group (row of the (N, 2K) candidates), tokens before EOS, log-probability."""

    group: int
    tokens: list[int]
    log_prob: float


def ended_candidates(is_eos: Tensor, top_scores: Tensor, top_beam: Tensor, seqs: Tensor, beam: int) -> list[Ended]:
    """The EOS candidates ranked within each group's first ``beam`` (group by group, best first).

    is_eos, top_scores, top_beam: (N, 2K) from :func:`top_candidates`; seqs (N * K, t) each beam's tokens so far.
    Read to the host in one copy per field (not one sync per hypothesis on a GPU).
    """
    ended = is_eos[:, :beam].nonzero().tolist()  # [(i, j)]: group i's candidate j wrote EOS
    if not ended:
        return []
    lps, origin = top_scores[:, :beam].tolist(), top_beam[:, :beam].tolist()
    rows = seqs[[i * beam + origin[i][j] for i, j in ended]].tolist()
    return [Ended(i, toks, lps[i][j]) for (i, j), toks in zip(ended, rows, strict=True)]


def best_unfinished(top_scores: Tensor, top_beam: Tensor, top_tok: Tensor, is_eos: Tensor, beam: int
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The best ``beam`` non-EOS candidates of each sentence stay alive (a stable sort keeps the score order).

    top_* and is_eos: (N, 2K) candidates -> scores (N, K), state rows into the (N * K) beam (N * K,), tokens (N * K,).
    """
    n = top_scores.size(0)
    _, order = torch.sort(is_eos.to(torch.int8), dim=1, stable=True)  # (N, 2K) non-EOS first
    keep = order[:, :beam]  # (N, K)
    rows = (top_beam.gather(1, keep) + torch.arange(n, device=top_beam.device)[:, None] * beam).view(-1)
    return top_scores.gather(1, keep), rows, top_tok.gather(1, keep).view(-1)


def still_active(n_finished: list[int], beam: int, step: int, max_len: Tensor) -> Tensor:
    """(N,) bool: sentences with fewer than ``beam`` finished hypotheses that are still below their max length."""
    return (torch.tensor(n_finished, device=max_len.device) < beam) & (step < max_len)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; length counts the EOS."""
    return ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: Tensor, cfg: SearchConfig, model_limit: int | None = None) -> Tensor:
    """src_lengths (B,) -> maximum number of output tokens (B,), EOS not counted, at least min_len.

    ``model_limit`` (the model's ``max_target_len``, EOS included) caps it so decoding never runs past the
    positions a model has.
    """
    max_len = torch.floor(cfg.max_len_a * src_lengths.double() + cfg.max_len_b).long()  # (B,)
    max_len = max_len.clamp(min=max(cfg.min_len, 0))
    return max_len if model_limit is None else max_len.clamp(max=model_limit - 1)


def masked_log_probs(model: Seq2Seq, logits: Tensor, step: int, max_len: Tensor, cfg: SearchConfig,
                     no_eos: Tensor | None = None) -> Tensor:
    """logits (N, V) -> log-probs (N, V) float32 that search may extend with: never PAD or BOS, no EOS before
    ``cfg.min_len`` tokens or in the rows of ``no_eos`` (N,) (e.g. a simultaneous policy's rows that have not
    read the whole source), only EOS in rows at their ``max_len`` (N,); step = number of tokens emitted so far."""
    lprobs = torch.log_softmax(logits.float(), dim=-1)  # (N, V)
    lprobs[:, model.pad_id] = -torch.inf
    lprobs[:, model.bos_id] = -torch.inf
    if step < cfg.min_len:
        lprobs[:, model.eos_id] = -torch.inf
    at_max = step >= max_len  # (N,) rows that must end now
    if no_eos is not None:
        lprobs[no_eos & ~at_max, model.eos_id] = -torch.inf
    if bool(at_max.any()):
        eos = lprobs[:, model.eos_id].clone()  # (N,)
        lprobs[at_max] = -torch.inf
        lprobs[:, model.eos_id] = eos
    return lprobs


def _next_log_probs(model: Seq2Seq, tokens: Tensor, state: DecoderState, step: int, max_len: Tensor,
                    cfg: SearchConfig) -> tuple[Tensor, DecoderState]:
    """One decoder step -> masked log-probs (N, V) float32 (:func:`masked_log_probs`) and the new state.

    tokens (N,) last emitted ids; max_len (N,) per row; step = number of tokens emitted so far.
    """
    logits, state = model.step(tokens, state)  # (N, V)
    return masked_log_probs(model, logits, step, max_len, cfg), state


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: SearchConfig) -> list[list[Hypothesis]]:
    """src (B, S), src_lengths (B,) -> one hypothesis per sentence (the argmax path)."""
    batch = src.size(0)
    state = model.init_state(model.encode(src, src_lengths))
    max_len = max_lengths(src_lengths, cfg, model.max_target_len).to(src.device)  # (B,)
    alive = torch.arange(batch, device=src.device)  # (N,) sentence of each active row
    tokens = torch.full((batch,), model.bos_id, dtype=torch.long, device=src.device)  # (N,)
    seqs = tokens.new_zeros(batch, 0)  # (N, t) emitted tokens
    log_prob = torch.zeros(batch, device=src.device)  # (N,)
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for step in range(int(max_len.max()) + 1):
        lprobs, state = _next_log_probs(model, tokens, state, step, max_len[alive], cfg)  # (N, V)
        best_lp, tokens = lprobs.max(dim=-1)  # (N,), (N,)
        log_prob = log_prob + best_lp
        seqs = torch.cat([seqs, tokens[:, None]], dim=1)  # (N, t + 1)
        done = tokens == model.eos_id  # (N,)
        ended = done.nonzero()[:, 0]  # (E,) rows that wrote EOS: to the host in one copy per field
        if ended.numel():
            penalty = length_penalty(step + 1, cfg.len_penalty)
            for s, toks, lp in zip(alive[ended].tolist(), seqs[ended, :-1].tolist(), log_prob[ended].tolist(),
                                   strict=True):
                results[s] = [Hypothesis(toks, lp / penalty, lp)]
        keep = (~done).nonzero()[:, 0]  # (N',)
        if keep.numel() == 0:
            break
        if keep.numel() < done.numel():
            alive, tokens, seqs, log_prob = alive[keep], tokens[keep], seqs[keep], log_prob[keep]
            state = reorder_state(state, keep)
    return results


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: SearchConfig) -> list[list[Hypothesis]]:
    """src (B, S), src_lengths (B,) -> per sentence, its n_best hypotheses, best first."""
    if not 1 <= cfg.n_best <= cfg.beam_size:
        raise ValueError(f"need 1 <= n_best <= beam_size, got n_best={cfg.n_best}, beam_size={cfg.beam_size}")
    batch, beam, device = src.size(0), cfg.beam_size, src.device
    state = model.init_state(model.encode(src, src_lengths))
    source_keys = model.source_state_keys(state)  # kept once per sentence, never copied per hypothesis
    state = reorder_state(state, torch.arange(batch, device=device).repeat_interleave(beam), keep=source_keys)
    max_len = max_lengths(src_lengths, cfg, model.max_target_len).to(device)  # (B,)
    alive = torch.arange(batch, device=device)  # (N,) sentence of each active beam group
    tokens = torch.full((batch * beam,), model.bos_id, dtype=torch.long, device=device)  # (N * K,)
    seqs = tokens.new_zeros(batch * beam, 0)  # (N * K, t)
    scores = torch.zeros(batch, beam, device=device)  # (N, K) cumulative log-probs
    scores[:, 1:] = -torch.inf  # all beams start identical: expand only the first
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for step in range(int(max_len.max()) + 1):
        n = alive.numel()
        row_max_len = max_len[alive].repeat_interleave(beam)  # (N * K,)
        lprobs, state = _next_log_probs(model, tokens, state, step, row_max_len, cfg)  # (N * K, V)
        top_scores, top_beam, top_tok, is_eos = top_candidates(scores, lprobs, beam, model.eos_id)  # (N, 2K) each

        # bookkeeping: EOS candidates ranked within the first K become finished hypotheses
        penalty = length_penalty(step + 1, cfg.len_penalty)
        alive_list = alive.tolist()
        for end in ended_candidates(is_eos, top_scores, top_beam, seqs, beam):
            hyps = finished[alive_list[end.group]]
            if len(hyps) < beam:
                hyps.append(Hypothesis(end.tokens, end.log_prob / penalty, end.log_prob))

        scores, rows, tokens = best_unfinished(top_scores, top_beam, top_tok, is_eos, beam)
        active = still_active([len(finished[s]) for s in alive_list], beam, step, max_len[alive])  # (N,)
        if not bool(active.any()):
            break
        rows = rows.view(n, beam)[active].view(-1)  # (N' * K,)
        tokens = tokens.view(n, beam)[active].view(-1)  # (N' * K,)
        scores, alive = scores[active], alive[active]  # (N', K), (N',)
        seqs = torch.cat([seqs[rows], tokens[:, None]], dim=1)  # (N' * K, t + 1)
        state = reorder_state(state, rows, keep=source_keys)  # (N' * K) rows; source entries (N) rows
        if source_keys and alive.numel() < n:  # sentences left the batch: so do their source entries
            state.update(reorder_state({k: state[k] for k in source_keys}, active.nonzero()[:, 0]))  # (N') rows
    return [sorted(hyps, key=lambda h: -h.score)[: cfg.n_best] for hyps in finished]


def search(model: Seq2Seq, src: Tensor, src_lengths: Tensor, cfg: SearchConfig) -> list[list[Hypothesis]]:
    """Greedy search when beam_size == 1, beam search otherwise."""
    if cfg.beam_size == 1:
        return greedy_search(model, src, src_lengths, cfg)
    return beam_search(model, src, src_lengths, cfg)
