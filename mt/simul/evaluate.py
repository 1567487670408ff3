"""Corpus translation under wait-k with latency: what ``evaluate.py decode.policy=wait_k`` reports.

Latency is computed from each hypothesis' emission schedule, in source subwords (target unit: subword) and
in source words (target unit: word, committed when the next word starts or the translation ends; see
:mod:`mt.simul.words`). AL uses the reference length when references are given (SimulEval's convention),
LAAL the longer of hypothesis and reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from mt.device import autocast_for
from mt.simul.latency import CorpusLatency, corpus_latency
from mt.simul.search import SimulHypothesis, translate_wait_k
from mt.simul.words import pieces, source_word_delays, target_word_delays
from mt.translate import Translator


@dataclass
class SimulResult:
    """Translations in input order, their hypotheses (schedules) and the corpus latency in both units."""

    texts: list[str]
    hypotheses: list[SimulHypothesis]
    subword: CorpusLatency
    word: CorpusLatency

    def latency_dict(self) -> dict:
        return {"subword": self.subword.as_dict(), "word": self.word.as_dict()}


def translate_simul(translator: Translator, sources: list[str], k: int,
                    references: list[str] | None = None) -> SimulResult:
    """Translate ``sources`` with wait-k (``translator``'s model, tokenizer, search settings, device)."""
    n = len(sources)
    hyps: list[SimulHypothesis | None] = [None] * n
    with autocast_for(translator.device, translator.precision):
        for batch in translator.batches(sources):
            batch = batch.to(translator.device)
            out = translate_wait_k(translator.model, batch.src, batch.src_lengths, k, translator.search_cfg)
            for i, h in zip(batch.ids.tolist(), out, strict=True):
                hyps[i] = h
    done: list[SimulHypothesis] = [h for h in hyps if h is not None]
    if len(done) != n:
        raise RuntimeError(f"{n - len(done)} of {n} sentences were not translated")
    tok = translator.tokenizer
    texts = tok.decode([h.tokens for h in done])
    src_ids = tok.encode(sources)
    ref_sub = None if references is None else [len(r) for r in tok.encode(references)]
    ref_words = None if references is None else [len(r.split()) for r in references]
    subword = corpus_latency([h.delays for h in done], [h.src_len for h in done], ref_sub, unit="subword")
    word_delays, src_words = [], []
    for h, ids in zip(done, src_ids, strict=True):
        src_pieces = pieces(tok, ids[: h.src_len])
        in_words = source_word_delays(h.delays, src_pieces)
        total = source_word_delays([h.src_len], src_pieces)[0]
        word_delays.append(target_word_delays(pieces(tok, h.tokens), in_words, end_delay=total) if h.tokens else [])
        src_words.append(total)
    word = corpus_latency(word_delays, src_words, ref_words, unit="word")
    return SimulResult(texts, done, subword, word)


def format_latency(result: SimulResult, k: int) -> str:
    """Two report lines: AL/LAAL/DAL in source subwords and in source words."""
    lines = []
    for lat in (result.subword, result.word):
        if lat.al is None:
            lines.append(f"wait-{k} latency ({lat.unit}s): n/a (no sentence with source and output)")
        else:
            lines.append(f"wait-{k} latency (source {lat.unit}s): AL {lat.al:.2f} LAAL {lat.laal:.2f} DAL {lat.dal:.2f} "
                         f"({lat.n_scored} sentences, {lat.n_skipped} skipped)")
    return "\n".join(lines)
