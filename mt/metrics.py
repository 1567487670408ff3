"""Corpus BLEU and chrF with sacreBLEU, on detokenized text against raw references.

BLEU tokenizes by target language as sacreBLEU does: ``zh`` for Chinese, ``ja-mecab`` for Japanese,
``ko-mecab`` for Korean, ``13a`` otherwise; ``decode.bleu_tokenize`` overrides that choice. The signature
names the tokenizer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF

from mt.errors import ConfigError

TOKENIZE_KEY = "decode.bleu_tokenize"  # the config key that overrides the language's tokenizer


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


def sacrebleu_lang(tgt_lang: str | None) -> str:
    """The language code sacreBLEU chooses a tokenizer by: the primary subtag, lower-cased (zh-Hans -> zh)."""
    return re.split(r"[-_]", str(tgt_lang or ""), maxsplit=1)[0].lower()


def bleu_metric(tgt_lang: str | None, tokenize: str | None = None) -> BLEU:
    """sacreBLEU's BLEU for target language ``tgt_lang``; ``tokenize`` (a sacreBLEU tokenizer name) overrides
    the tokenizer the language selects. A tokenizer that is unknown or cannot be built (a missing extra such
    as ``sacrebleu[ja]``, an ``spm`` model that cannot be downloaded) is a one-line :class:`ConfigError`."""
    lang = sacrebleu_lang(tgt_lang)
    name = tokenize if tokenize is not None else BLEU._TOKENIZER_MAP.get(lang, BLEU.TOKENIZER_DEFAULT)
    if tokenize is not None and tokenize not in BLEU.TOKENIZERS:
        raise ConfigError(f"{TOKENIZE_KEY}={tokenize!r} is not a sacreBLEU tokenizer; use one of "
                          f"{', '.join(BLEU.TOKENIZERS)}, or null to choose by the target language")
    try:
        return BLEU(trg_lang=lang, tokenize=tokenize)
    except Exception as e:  # sacreBLEU raises RuntimeError/ImportError/URLError, with multi-line messages
        text = " ".join(str(e).split())
        extra = re.search(r"pip install (\S*sacrebleu\[\w+\]\S*)", text)
        why = (f"needs the {extra.group(1)} extra (not installed): pip install '{extra.group(1)}'" if extra
               else f"cannot be built here ({type(e).__name__}: {text[:200]})")
        what = (f"{TOKENIZE_KEY}={tokenize!r}" if tokenize is not None else
                f"BLEU for target language {tgt_lang!r} uses sacreBLEU's {name!r} tokenizer, which")
        raise ConfigError(f"{what} {why}; or set {TOKENIZE_KEY}= to another tokenizer (e.g. char or 13a)") \
            from None


def corpus_score(hypotheses: list[str], references: list[str] | list[list[str]], *,
                 tgt_lang: str | None = None, tokenize: str | None = None) -> Score:
    """Score hypotheses against one reference stream (list[str]) or several (list of streams).

    :param tgt_lang: target language code (``data.tgt``); selects BLEU's tokenizer as sacreBLEU does. Pass it:
        None (unknown language, sacreBLEU's 13a) exists only until every caller does.
    :param tokenize: ``decode.bleu_tokenize``: a sacreBLEU tokenizer name, or None to choose by ``tgt_lang``.

    The number of hypotheses must equal the number of references: a mismatch is an error, never truncation.
    """
    streams = [references] if not references or isinstance(references[0], str) else references
    for stream in streams:
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(stream)} references: "
                             "every sentence must be translated exactly once")
    bleu, chrf = bleu_metric(tgt_lang, tokenize), CHRF()
    b = bleu.corpus_score(hypotheses, streams)
    c = chrf.corpus_score(hypotheses, streams)
    return Score(bleu=b.score, chrf=c.score, bleu_signature=str(bleu.get_signature()),
                 chrf_signature=str(chrf.get_signature()), n_sentences=len(hypotheses))


@dataclass
class Signatures:
    """sacreBLEU signatures of the BLEU and chrF that :func:`corpus_score` computes (one reference stream)."""

    bleu: str
    chrf: str


def metric_signatures(*, tgt_lang: str | None = None, tokenize: str | None = None) -> Signatures:
    """The signatures of :func:`corpus_score` without a real corpus (sacreBLEU needs one scored call)."""
    score = corpus_score(["."], ["."], tgt_lang=tgt_lang, tokenize=tokenize)
    return Signatures(score.bleu_signature, score.chrf_signature)
