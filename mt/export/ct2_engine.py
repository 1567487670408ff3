"""``engine=ctranslate2``: decode a ``format=ctranslate2`` export with CTranslate2, behind the Translator API.

Batching, sentence order, empty lines, truncation of long sources and detokenization are the shared ones of
:class:`~mt.translate.TranslatorBase`; only the search runs in CTranslate2. Search settings map as follows:

* max length: sentences are decoded in groups of equal ``max_len = floor(max_len_a * src_len + max_len_b)``
  (``max_decoding_length``), so every sentence gets exactly the project's per-sentence limit;
* ``min_len`` -> ``min_decoding_length``; PAD and BOS are suppressed, as in :mod:`mt.search`;
* greedy search (``beam_size=1``) therefore picks the same tokens as :mod:`mt.search` up to floating-point
  differences of the kernels (tested: identical on Multi30k test sentences in fp32);
* beam search ranks with CTranslate2's length normalisation ``log_prob / length ** len_penalty``, not the
  GNMT ``((5 + length) / 6) ** len_penalty`` of :mod:`mt.search`, so beam outputs and scores may differ slightly.
  Scores are CTranslate2's; ``log_prob`` is not reported (NaN).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mt.batch import BOS_ID, PAD_ID, Batch
from mt.export import ExportError
from mt.export.source import token_pieces
from mt.search import Hypothesis, SearchConfig, max_lengths
from mt.tokenizer import Tokenizer
from mt.translate import TranslatorBase, decode_settings


def import_ctranslate2() -> Any:
    """The ctranslate2 module, or a one-line error saying how to install it."""
    try:
        import ctranslate2
    except ImportError:
        raise ExportError("CTranslate2 is not installed; pip install 'ctranslate2>=4,<5' "
                          "(or pip install -e '.[ctranslate2]')") from None
    return ctranslate2


class CT2Translator(TranslatorBase):
    """Translator whose search runs in ``ctranslate2.Translator``."""

    def __init__(self, folder: Path, tokenizer: Tokenizer, config: dict[str, Any], decode_cfg: DictConfig | dict,
                 device: str = "cpu", threads: int = 0) -> None:
        super().__init__(tokenizer, decode_cfg, config["max_source_len"])
        ct2 = import_ctranslate2()
        self.config = config
        self.max_target_len = config["max_target_len"]
        self.engine = ct2.Translator(str(folder), device=device, inter_threads=1, intra_threads=threads)
        self.pieces = token_pieces(tokenizer)
        self.ids = {piece: i for i, piece in enumerate(self.pieces)}
        self.suppress = [[self.pieces[PAD_ID]], [self.pieces[BOS_ID]]]

    @classmethod
    def load(cls, folder: Path, decode_cfg: DictConfig | dict | None, device: str = "cpu",
             threads: int = 0) -> CT2Translator:
        """Open a ``format=ctranslate2`` folder (its metadata, tokenizer and CTranslate2 model)."""
        from mt.export.ct2 import CT2_METADATA_FILE
        from mt.export.hf import read_config, read_tokenizer

        config = read_config(folder / CT2_METADATA_FILE)
        decode = decode_settings(config["decode"], decode_cfg)
        return cls(folder, read_tokenizer(folder, config), config, decode, device, threads)

    def hypotheses(self, batch: Batch, cfg: SearchConfig) -> list[list[Hypothesis]]:
        lengths = batch.src_lengths.tolist()
        sources = [[self.pieces[i] for i in row[:n]] for row, n in zip(batch.src.tolist(), lengths, strict=True)]
        limits = max_lengths(batch.src_lengths, cfg, self.max_target_len).tolist()  # per sentence, EOS not counted
        groups: dict[int, list[int]] = {}
        for i, limit in enumerate(limits):
            groups.setdefault(limit, []).append(i)
        out: list[list[Hypothesis]] = [[] for _ in sources]
        for limit, rows in groups.items():
            results = self.engine.translate_batch(
                [sources[i] for i in rows], beam_size=cfg.beam_size, num_hypotheses=cfg.n_best,
                length_penalty=cfg.len_penalty, max_decoding_length=limit, min_decoding_length=cfg.min_len,
                suppress_sequences=self.suppress, return_scores=True, max_input_length=0)
            for i, result in zip(rows, results, strict=True):
                out[i] = [Hypothesis([self.ids[t] for t in tokens], float(score), math.nan)
                          for tokens, score in zip(result.hypotheses, result.scores, strict=True)]
        return [[Hypothesis([], 0.0, 0.0)] * cfg.n_best if n <= 1 else h for h, n in zip(out, lengths, strict=True)]
