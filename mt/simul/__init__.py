"""Simultaneous (streaming) translation: the wait-k policy, search within it, and latency metrics."""

from mt.simul.latency import CorpusLatency, Latency, corpus_latency, sentence_latency
from mt.simul.policy import check_k, sample_k, step_visibility, tokens_read, wait_k_visibility

__all__ = [
    "CorpusLatency",
    "Latency",
    "check_k",
    "corpus_latency",
    "sample_k",
    "sentence_latency",
    "step_visibility",
    "tokens_read",
    "wait_k_visibility",
]
