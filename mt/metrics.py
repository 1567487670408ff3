"""Corpus BLEU and chrF with sacreBLEU, on detokenized text against raw references."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF


@dataclass
class Score:
    """Corpus scores of one hypothesis set, with the sacreBLEU signatures that define them."""

    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    n_sentences: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"BLEU {self.bleu:.2f} ({self.bleu_signature})\n"
                f"chrF {self.chrf:.2f} ({self.chrf_signature})")


def corpus_score(hypotheses: list[str], references: list[str] | list[list[str]]) -> Score:
    """Score hypotheses against one reference stream (list[str]) or several (list of streams).

    The number of hypotheses must equal the number of references: a mismatch is an error, never truncation.
    """
    streams = [references] if not references or isinstance(references[0], str) else references
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(stream)} references: "
                             "every sentence must be translated exactly once")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(hypotheses, streams)
    c = chrf.corpus_score(hypotheses, streams)
    return Score(bleu=b.score, chrf=c.score, bleu_signature=str(bleu.get_signature()),
                 chrf_signature=str(chrf.get_signature()), n_sentences=len(hypotheses))


@dataclass
class Signatures:
    """sacreBLEU signatures of the BLEU and chrF that :func:`corpus_score` computes (one reference stream)."""

    bleu: str
    chrf: str


def metric_signatures() -> Signatures:
    """The signatures of :func:`corpus_score` without scoring a real corpus (sacreBLEU needs one scored call)."""
    score = corpus_score(["."], ["."])
    return Signatures(score.bleu_signature, score.chrf_signature)

