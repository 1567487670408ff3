"""Decoding speed of exported models: this project's PyTorch search vs CTranslate2 fp32 vs CTranslate2 int8.

:func:`export_speed` exports a checkpoint to CTranslate2 (fp32 and each quantization) in a temporary folder and
translates the same sentences with every engine and beam size through the same :class:`Translator` API (same
token-budget batches, same length limits), with ``threads`` intra-op threads. Rows carry sentences/s, target
tokens/s and BLEU (sacreBLEU, with its signature) of each, so speed is never reported without the quality it
came with. Target tokens are the sentencepiece tokens of the detokenized translations (EOS not counted), the same
count for every engine.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mt.api import Translator, corpus_score, export_model, load_checkpoint


@dataclass
class ExportSpeedRow:
    """One engine x weight type x beam over the given sentences."""

    engine: str  # torch (this project's search) | ctranslate2
    weights: str  # float32 | int8 | ... (CTranslate2 quantization)
    beam: int
    threads: int
    sentences: int
    target_tokens: int  # sentencepiece tokens of the translations, EOS not counted
    seconds: float  # best of ``repeats`` timed passes
    sent_s: float
    tok_s: float
    bleu: float
    bleu_signature: str

    def as_dict(self) -> dict:
        return asdict(self)


def export_speed(ckpt: str, sources: list[str], references: list[str], *, tgt_lang: str,
                 beams: tuple[int, ...] = (1, 5), threads: int = 2, quantizations: tuple[str | None, ...] = (None, "int8"),
                 repeats: int = 1, warmup: int = 16) -> list[ExportSpeedRow]:
    """Rows for the torch engine and CTranslate2 (fp32 = quantization None, and each quantization) x ``beams``.

    Decoding settings are the checkpoint's own (length penalty, length limits, token budget) with ``beam_size``
    set per row. Each engine first translates ``warmup`` sentences untimed.
    """
    decode = dict(load_checkpoint(ckpt)["hyper_parameters"]["decode"], n_best=1)
    rows: list[ExportSpeedRow] = []
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="export_speed.") as tmp:
            engines = [("torch", "float32", lambda d: Translator.from_checkpoint(ckpt, decode_cfg=d, device="cpu"))]
            for q in quantizations:
                out = export_model(ckpt, Path(tmp) / f"ct2-{q or 'float32'}", "ctranslate2", q)
                engines.append(("ctranslate2", q or "float32", lambda d, out=out: Translator.from_pretrained(
                    out, decode_cfg=d, device="cpu", threads=threads)))
            for engine, weights, load in engines:
                for beam in beams:
                    translator = load(dict(decode, beam_size=beam))
                    translator.translate(sources[:warmup])
                    seconds, hyps = _timed(translator, sources, repeats)
                    tokens = sum(len(t) for t in translator.tokenizer.encode(hyps))
                    score = corpus_score(hyps, references, tgt_lang=tgt_lang)
                    rows.append(ExportSpeedRow(engine, weights, beam, threads, len(sources), tokens, round(seconds, 3),
                                               round(len(sources) / seconds, 1), round(tokens / seconds, 1),
                                               round(score.bleu, 2), score.bleu_signature))
    finally:
        torch.set_num_threads(torch_threads)
    return rows


def _timed(translator: Translator, sources: list[str], repeats: int) -> tuple[float, list[str]]:
    best, hyps = float("inf"), []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        hyps = translator.translate(sources)
        best = min(best, time.perf_counter() - start)
    return best, hyps


def render_rows(rows: list[ExportSpeedRow]) -> str:
    """A Markdown table of the rows (for the README / bench output)."""
    lines = ["| engine | weights | beam | threads | sentences/s | target tokens/s | BLEU |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.engine} | {r.weights} | {r.beam} | {r.threads} | {r.sent_s:.1f} | {r.tok_s:.0f} | {r.bleu:.2f} |"
              for r in rows]
    return "\n".join(lines)
