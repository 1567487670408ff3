"""Latency of simultaneous translation from emission schedules: AL, LAAL and DAL, per sentence and corpus.

A schedule (``delays``) gives, for each emitted target unit t = 1..|y|, how many source units had been read
when it was emitted (``g(t)``, 1 <= g(t) <= |x|). Units are subwords or words (see :mod:`mt.simul.words`).

* AL, Average Lagging (Ma et al. 2019, STACL): with ``gamma = |y| / |x|`` and ``tau`` the first t with
  ``g(t) >= |x|`` (|y| if none), ``AL = 1/tau * sum_{t=1..tau} [g(t) - (t - 1) / gamma]``. As in SimulEval
  (the scorer most papers report), |y| is the reference length when one is given, the hypothesis length
  otherwise.
* LAAL, Length-Adaptive AL (Papi et al. 2022): AL with ``|y| = max(|hypothesis|, |reference|)``, so that an
  over-long hypothesis cannot lower its lag by being long.
* DAL, Differentiable AL (Cherry & Foster 2019): ``g'(1) = g(1)``, ``g'(t) = max(g(t), g'(t-1) + 1/gamma)``,
  ``DAL = 1/|y| * sum_{t=1..|y|} [g'(t) - (t - 1) / gamma]`` with ``gamma = |y_hyp| / |x|``, over every
  target unit (no cut at tau).

A sentence with no source or no emitted unit has no latency: corpus averages skip it and count it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mt.errors import MTError


@dataclass
class Latency:
    """Latency of one sentence, in source units."""

    al: float
    laal: float
    dal: float


@dataclass
class CorpusLatency:
    """Sentence latencies averaged over a corpus (the SimulEval convention: mean of sentence scores)."""

    al: float | None  # None when no sentence could be scored
    laal: float | None
    dal: float | None
    n_scored: int
    n_skipped: int  # empty source or empty output
    unit: str  # "subword" | "word"

    def as_dict(self) -> dict:
        return asdict(self)


def _check(delays: Sequence[float], src_len: int) -> None:
    if src_len <= 0 or not delays:
        raise MTError(f"latency needs a non-empty source and output (got |x|={src_len}, |y|={len(delays)}); "
                      "skip such sentences")
    if any(b < a for a, b in zip(delays, delays[1:], strict=False)):
        raise MTError(f"delays must not decrease (a policy cannot un-read source): {list(delays)[:10]}")


def _lagging(delays: Sequence[float], src_len: int, tgt_len: float) -> float:
    """The AL sum with ``gamma = tgt_len / src_len``, cut after the first unit emitted with the whole source."""
    gamma = tgt_len / src_len
    total, tau = 0.0, 0
    for t, g in enumerate(delays):  # t = (index - 1)
        total += g - t / gamma
        tau = t + 1
        if g >= src_len:
            break
    return total / tau


def average_lagging(delays: Sequence[float], src_len: int, ref_len: int | None = None) -> float:
    """AL of one sentence; |y| = ``ref_len`` when given, else the hypothesis length ``len(delays)``."""
    _check(delays, src_len)
    return _lagging(delays, src_len, ref_len if ref_len else len(delays))


def length_adaptive_average_lagging(delays: Sequence[float], src_len: int, ref_len: int | None = None) -> float:
    """LAAL of one sentence: AL with |y| = max(hypothesis length, reference length)."""
    _check(delays, src_len)
    return _lagging(delays, src_len, max(len(delays), ref_len or 0))


def differentiable_average_lagging(delays: Sequence[float], src_len: int) -> float:
    """DAL of one sentence (gamma from the hypothesis length; every target unit counts)."""
    _check(delays, src_len)
    gamma = len(delays) / src_len
    total, prev = 0.0, 0.0
    for t, g in enumerate(delays):
        g_prime = g if t == 0 else max(g, prev + 1.0 / gamma)
        total += g_prime - t / gamma
        prev = g_prime
    return total / len(delays)


def sentence_latency(delays: Sequence[float], src_len: int, ref_len: int | None = None) -> Latency:
    """AL, LAAL and DAL of one sentence (``ref_len``: reference length in target units, if known)."""
    return Latency(al=average_lagging(delays, src_len, ref_len),
                   laal=length_adaptive_average_lagging(delays, src_len, ref_len),
                   dal=differentiable_average_lagging(delays, src_len))


def corpus_latency(schedules: Sequence[Sequence[float]], src_lens: Sequence[int],
                   ref_lens: Sequence[int] | None = None, unit: str = "subword") -> CorpusLatency:
    """Mean sentence AL/LAAL/DAL over a corpus; sentences with an empty source or output are skipped."""
    if len(schedules) != len(src_lens) or (ref_lens is not None and len(ref_lens) != len(schedules)):
        raise MTError(f"corpus_latency: {len(schedules)} schedules, {len(src_lens)} source lengths"
                      f"{'' if ref_lens is None else f', {len(ref_lens)} reference lengths'}: give one per sentence")
    scores = [sentence_latency(d, n, None if ref_lens is None else ref_lens[i])
              for i, (d, n) in enumerate(zip(schedules, src_lens, strict=True)) if d and n > 0]
    skipped = len(schedules) - len(scores)

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return CorpusLatency(al=mean([s.al for s in scores]), laal=mean([s.laal for s in scores]),
                         dal=mean([s.dal for s in scores]), n_scored=len(scores), n_skipped=skipped, unit=unit)
