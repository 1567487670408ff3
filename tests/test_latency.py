"""Latency metrics against worked examples from the papers' definitions (numbers derived in the comments)."""

from __future__ import annotations

import pytest

from mt.errors import MTError
from mt.simul.latency import (
    average_lagging,
    corpus_latency,
    differentiable_average_lagging,
    length_adaptive_average_lagging,
    sentence_latency,
)
from mt.simul.words import group_words, source_word_delays, target_word_delays, words_read


def test_wait_k_with_equal_lengths_lags_k():
    # wait-2, |x| = |y| = 4: g = [2, 3, 4, 4]. gamma = 1, tau = 3 (g(3) = 4 = |x|).
    # AL = 1/3 [(2-0) + (3-1) + (4-2)] = 2 = k (STACL: wait-k lags k tokens when lengths match).
    # DAL: g' = [2, max(3, 2+1)=3, max(4, 3+1)=4, max(4, 4+1)=5]; 1/4 [(2-0)+(3-1)+(4-2)+(5-3)] = 2.
    g = [2, 3, 4, 4]
    assert average_lagging(g, 4) == pytest.approx(2.0)
    assert length_adaptive_average_lagging(g, 4) == pytest.approx(2.0)
    assert differentiable_average_lagging(g, 4) == pytest.approx(2.0)


def test_longer_target():
    # wait-1, |x| = 3, |y| = 6: g = [1, 2, 3, 3, 3, 3].
    # AL with |y| = 6: gamma = 2, tau = 3: 1/3 [(1-0) + (2-0.5) + (3-1)] = 4.5/3 = 1.5.
    # AL with the reference length 3 (SimulEval convention): gamma = 1: 1/3 [(1-0) + (2-1) + (3-2)] = 1.
    # LAAL with reference 3: |y| = max(6, 3) = 6 -> 1.5.
    # DAL: gamma = 2; g' = [1, 2, 3, 3.5, 4, 4.5]; minus (t-1)/2 = [0, .5, 1, 1.5, 2, 2.5] -> [1, 1.5, 2, 2, 2, 2];
    # sum 10.5 / 6 = 1.75.
    g = [1, 2, 3, 3, 3, 3]
    assert average_lagging(g, 3) == pytest.approx(1.5)
    assert average_lagging(g, 3, ref_len=3) == pytest.approx(1.0)
    assert length_adaptive_average_lagging(g, 3, ref_len=3) == pytest.approx(1.5)
    assert differentiable_average_lagging(g, 3) == pytest.approx(1.75)


def test_full_sentence_lags_the_whole_source():
    # read everything first: |x| = 5, |y| = 4, g = [5, 5, 5, 5]. AL: tau = 1 -> 5 - 0 = 5 = |x|.
    # DAL: gamma = 0.8, 1/gamma = 1.25; g' = [5, 6.25, 7.5, 8.75]; minus [0, 1.25, 2.5, 3.75] -> all 5 -> 5.
    g = [5, 5, 5, 5]
    assert average_lagging(g, 5) == pytest.approx(5.0)
    assert differentiable_average_lagging(g, 5) == pytest.approx(5.0)


def test_over_generation_is_not_rewarded_by_laal():
    # Papi et al. 2022: |x| = 2, reference 2 units, hypothesis 4 units emitted early, g = [1, 1, 1, 2].
    # AL with the reference length: gamma = 1, tau = 4: 1/4 [(1-0) + (1-1) + (1-2) + (2-3)] = -0.25 (negative).
    # LAAL: |y| = 4, gamma = 2: 1/4 [(1-0) + (1-0.5) + (1-1) + (2-1.5)] = 2/4 = 0.5.
    g = [1, 1, 1, 2]
    assert average_lagging(g, 2, ref_len=2) == pytest.approx(-0.25)
    assert length_adaptive_average_lagging(g, 2, ref_len=2) == pytest.approx(0.5)


def test_dal_penalises_bursts_that_al_ignores_after_tau():
    # |x| = 4, |y| = 4: g = [1, 4, 4, 4] (one token, then wait for everything). AL: tau = 2: 1/2 [(1-0) + (4-1)] = 2.
    # DAL: g' = [1, 4, 5, 6]; minus [0, 1, 2, 3] -> [1, 3, 3, 3] -> 10/4 = 2.5.
    g = [1, 4, 4, 4]
    assert average_lagging(g, 4) == pytest.approx(2.0)
    assert differentiable_average_lagging(g, 4) == pytest.approx(2.5)


def test_sentence_and_corpus():
    one = sentence_latency([2, 3, 4, 4], 4)
    assert (one.al, one.laal, one.dal) == pytest.approx((2.0, 2.0, 2.0))
    corpus = corpus_latency([[2, 3, 4, 4], [5, 5, 5, 5], [], [1]], [4, 5, 3, 0])
    # the empty output and the empty source are skipped: mean of AL 2 and 5, DAL 2 and 5
    assert corpus.al == pytest.approx(3.5) and corpus.dal == pytest.approx(3.5)
    assert (corpus.n_scored, corpus.n_skipped) == (2, 2)
    assert corpus_latency([[]], [3]).al is None


def test_bad_schedules_are_refused():
    with pytest.raises(MTError, match="must not decrease"):
        average_lagging([3, 2], 3)
    with pytest.raises(MTError, match="non-empty"):
        differentiable_average_lagging([], 3)
    with pytest.raises(MTError, match="one per sentence"):
        corpus_latency([[1]], [1, 2])


def test_word_units():
    src = ["\u2581A", "\u2581man", "\u2581ri", "ding", "\u2581."]
    # words that had to arrive after d = 0..5 pieces: "▁ri" belongs to the third word, "ding" adds none
    assert words_read(src) == [0, 1, 2, 3, 3, 4]
    assert source_word_delays([2, 3, 4, 5], src) == [2, 3, 3, 4]
    tgt = ["\u2581Ein", "\u2581Mann", "\u2581f\u00e4hr", "t", "\u2581."]
    assert group_words(tgt) == [[0], [1], [2, 3], [4]]
    # a word is committed when the next word's first piece is emitted; the last one at the end (delay 4)
    assert target_word_delays(tgt, [1, 2, 3, 3, 4], end_delay=4) == [2, 3, 4, 4]
    assert group_words(["x", "\u2581y"]) == [[0], [1]]  # a first piece without "▁" still starts a word
