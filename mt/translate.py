"""Translation: the one decoding path shared by validation, test, evaluate.py and the Python API."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import overload

import torch
from omegaconf import DictConfig, OmegaConf

from mt.batch import EOS_ID, Batch
from mt.checkpoint import (
    CheckpointError,
    checkpoint_tokenizer,
    load_checkpoint,
    load_model_state,
    model_state,
    select_weights,
)
from mt.config import CONF_DIR
from mt.device import autocast_for, resolve_device
from mt.errors import MTError
from mt.models import build_stored_model
from mt.models.base import Seq2Seq
from mt.search import Hypothesis, SearchConfig, search
from mt.simul.search import translate_wait_k
from mt.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class ScoredTranslation:
    """One hypothesis of a sentence: its detokenized text and the scores the search gave it."""

    text: str
    score: float  # what the search ranked by: log_prob / ((5 + n) / 6) ** len_penalty (n tokens incl. EOS);
    # engine=ctranslate2: CTranslate2's score, log_prob / n ** len_penalty
    log_prob: float  # sum of the token log-probabilities, EOS included (NaN with engine=ctranslate2)


def decode_settings(stored: DictConfig | dict, overrides: DictConfig | dict | None = None) -> dict:
    """The decode settings a translator uses: ``conf/decode/default.yaml``, then the model's stored settings (what
    it was trained or exported with), then ``overrides`` (e.g. ``{"beam_size": 1}``); an unknown key in
    ``overrides`` is a one-line error."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "decode" / "default.yaml"))
    overrides = OmegaConf.to_container(overrides) if isinstance(overrides, DictConfig) else dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise MTError(f"decode setting {', '.join(map(repr, unknown))} is unknown; the settings are "
                      f"{', '.join(defaults)} (conf/decode/default.yaml)")
    stored = OmegaConf.to_container(stored) if isinstance(stored, DictConfig) else dict(stored)
    return {**defaults, **stored, **overrides}


def search_config(decode_cfg: DictConfig | dict) -> SearchConfig:
    """The search settings of a ``decode`` config group (``n_best`` checked against ``beam_size``)."""
    d = decode_cfg
    cfg = SearchConfig(beam_size=int(d["beam_size"]), len_penalty=float(d["len_penalty"]),
                       max_len_a=float(d["max_len_a"]), max_len_b=int(d["max_len_b"]),
                       min_len=int(d["min_len"]), n_best=int(d["n_best"]),
                       wait_k=int(d["wait_k"]) if d.get("policy", "full") == "wait_k" else None)  # older: full
    check_n_best(cfg.n_best, cfg.beam_size)
    return cfg


def check_n_best(n_best: int, beam_size: int) -> None:
    """One-line error unless 1 <= n_best <= beam_size (greedy search finds one hypothesis)."""
    if not 1 <= n_best <= beam_size:
        raise MTError(f"decode.n_best={n_best} needs 1 <= n_best <= decode.beam_size (beam_size={beam_size}); "
                      f"set decode.beam_size={max(n_best, 1)} or more, or lower decode.n_best")


@torch.inference_mode()
def decode_hypotheses(model: Seq2Seq, batch: Batch, cfg: SearchConfig) -> list[list[Hypothesis]]:
    """The ``cfg.n_best`` best hypotheses (token ids, no BOS/EOS) of each sentence of ``batch``, best first.

    An empty source (only EOS) gives ``n_best`` empty translations (score 0) without searching, so that an empty
    line in is an empty line out, the same in validation, test and raw-text translation.
    """
    if cfg.wait_k is not None:  # simultaneous: the best hypothesis within the policy (no n-best)
        hyps = [[Hypothesis(h.tokens, h.score, h.log_prob)]
                for h in translate_wait_k(model, batch.src, batch.src_lengths, cfg.wait_k, cfg)]
    else:
        hyps = search(model, batch.src, batch.src_lengths, cfg)
    empty = (batch.src_lengths <= 1).tolist()
    return [[Hypothesis([], 0.0, 0.0)] * cfg.n_best if e else h for h, e in zip(hyps, empty, strict=True)]


def decode_batch(model: Seq2Seq, batch: Batch, cfg: SearchConfig) -> list[list[int]]:
    """Best hypothesis (token ids, no BOS/EOS) for each sentence of ``batch``, in batch order."""
    return [h[0].tokens for h in decode_hypotheses(model, batch, cfg)]


def source_limit(model: Seq2Seq, decode_cfg: DictConfig | dict) -> int | None:
    """Longest source, in subwords (EOS not counted), that decoding accepts: ``decode.max_src_len`` capped by the
    model's own limit; longer sources are truncated (with a warning, counted), never dropped."""
    return _source_limit(model.max_source_len, decode_cfg)


def _source_limit(max_source_len: int | None, decode_cfg: DictConfig | dict) -> int | None:
    limit = decode_cfg.get("max_src_len")
    if max_source_len is not None:
        own = max_source_len - 1  # room for EOS
        limit = own if limit is None else min(int(limit), own)
    return None if limit is None else int(limit)


def fit_batch(batch: Batch, max_src: int | None, max_tgt: int | None) -> tuple[Batch, int]:
    """``batch`` with sources cut to ``max_src`` subwords (then EOS) and ``tgt_in``/``tgt_out`` to ``max_tgt``
    positions, so that evaluating any sentence fits the model and memory; returns it and the number of sources cut.
    """
    src, lengths, n_cut = batch.src, batch.src_lengths, 0
    if max_src is not None:
        long = lengths > max_src + 1  # (B,)
        n_cut = int(long.sum())
        if n_cut:
            src = src[:, : max_src + 1].clone()  # (B, max_src + 1)
            src[long, max_src] = EOS_ID
            lengths = lengths.clamp(max=max_src + 1)
    tgt_in, tgt_out = batch.tgt_in, batch.tgt_out
    if max_tgt is not None and tgt_in is not None and tgt_in.size(1) > max_tgt:
        tgt_in, tgt_out = tgt_in[:, :max_tgt], tgt_out[:, :max_tgt]  # (B, max_tgt)
    if src is batch.src and tgt_in is batch.tgt_in:
        return batch, 0
    return Batch(src, lengths, batch.ids, tgt_in, tgt_out), n_cut


class TranslatorBase(ABC):
    """Batched translation of raw sentences: sentencepiece, token-budget batches, an engine's search.

    Engines (this project's PyTorch search, CTranslate2) implement :meth:`hypotheses`; everything else (batching,
    order, empty lines, n-best, detokenization) is shared, so every engine behaves the same around the search.
    """

    def __init__(self, tokenizer: Tokenizer, decode_cfg: DictConfig | dict, max_source_len: int | None) -> None:
        self.tokenizer = tokenizer
        self.decode_cfg = decode_cfg
        self.search_cfg = search_config(decode_cfg)
        self.max_source_len = max_source_len

    @abstractmethod
    def hypotheses(self, batch: Batch, cfg: SearchConfig) -> list[list[Hypothesis]]:
        """Per sentence of ``batch`` (batch order), its ``cfg.n_best`` hypotheses, best first; an empty source
        (only EOS) gives ``n_best`` empty hypotheses with score 0."""

    def batches(self, sentences: list[str]) -> Iterator[Batch]:
        from mt.data import source_batches

        return source_batches(self.tokenizer, sentences, int(self.decode_cfg["max_tokens"]),
                              _source_limit(self.max_source_len, self.decode_cfg))

    def translate_scored(self, batches: Iterable[Batch], n: int, n_best: int) -> list[list[ScoredTranslation]]:
        """Decode batches whose ``ids`` index a list of ``n`` sentences; per sentence (id order) its ``n_best``
        hypotheses, best first."""
        cfg = replace(self.search_cfg, n_best=n_best)
        check_n_best(n_best, cfg.beam_size)
        out: list[list[ScoredTranslation] | None] = [None] * n
        for batch in batches:
            hyps = self.hypotheses(batch, cfg)
            texts = iter(self.tokenizer.decode([h.tokens for sent in hyps for h in sent]))
            for i, sent in zip(batch.ids.tolist(), hyps, strict=True):
                out[i] = [ScoredTranslation(next(texts), h.score, h.log_prob) for h in sent]
        missing = [i for i, t in enumerate(out) if t is None]
        if missing:
            raise RuntimeError(f"{len(missing)} of {n} sentences were not translated (first: {missing[:5]})")
        return out  # type: ignore[return-value]

    def translate_batches(self, batches: Iterable[Batch], n: int) -> list[str]:
        """Best translation of each of ``n`` sentences (batches' ``ids`` index them), in id order."""
        return [hyps[0].text for hyps in self.translate_scored(batches, n, 1)]

    @overload
    def translate(self, sentences: list[str], n_best: None = None) -> list[str]: ...

    @overload
    def translate(self, sentences: list[str], n_best: int) -> list[list[ScoredTranslation]]: ...

    def translate(self, sentences: list[str], n_best: int | None = None
                  ) -> list[str] | list[list[ScoredTranslation]]:
        """Translate raw sentences (one per item); same count out as in, empty in gives empty out.

        Without ``n_best``: the best translation of each sentence (texts). With ``n_best=k``: per sentence its
        k best hypotheses with their scores (needs ``decode.beam_size >= k``).
        """
        if n_best is None:
            return self.translate_batches(self.batches(sentences), len(sentences))
        return self.translate_scored(self.batches(sentences), len(sentences), n_best)


class Translator(TranslatorBase):
    """This project's own engine: a :class:`~mt.models.base.Seq2Seq` and :mod:`mt.search` in PyTorch.

    >>> tr = Translator.from_checkpoint("outputs/.../checkpoints/last.ckpt")   # or a run folder
    >>> tr = Translator.from_pretrained("exported/")                            # python -m mt.export
    >>> tr.translate(["A man is riding a bike."])
    >>> tr.translate(["A man is riding a bike."], n_best=3)   # [[ScoredTranslation(text, score, log_prob), ...]]
    """

    def __init__(self, model: Seq2Seq, tokenizer: Tokenizer, decode_cfg: DictConfig | dict,
                 device: str | torch.device = "cpu", precision: str = "32") -> None:
        super().__init__(tokenizer, decode_cfg, model.max_source_len)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = str(precision)

    def hypotheses(self, batch: Batch, cfg: SearchConfig) -> list[list[Hypothesis]]:
        with autocast_for(self.device, self.precision):
            return decode_hypotheses(self.model, batch.to(self.device), cfg)

    @classmethod
    def from_checkpoint(cls, path: str | Path, decode_cfg: DictConfig | dict | None = None,
                        device: str = "auto", precision: str = "32", cache_dir: str | Path | None = None
                        ) -> Translator:
        """Load model and tokenizer from a checkpoint file or a training run folder (its best checkpoint, else
        ``last.ckpt``); ``decode_cfg`` overrides some or all of the decode settings it was trained with
        (:func:`decode_settings`), e.g. ``{"beam_size": 1}``."""
        ckpt_path = resolve_checkpoint(str(path))
        ckpt = load_checkpoint(ckpt_path)
        model, tokenizer = model_from_checkpoint(ckpt, str(ckpt_path), cache_dir)
        decode = decode_settings(ckpt["hyper_parameters"]["decode"], decode_cfg)
        return cls(model, tokenizer, decode, resolve_device(device), precision)

    @staticmethod
    def from_pretrained(path: str | Path, decode_cfg: DictConfig | dict | None = None, engine: str = "auto",
                        device: str = "auto", precision: str = "32", threads: int = 0) -> TranslatorBase:
        """Load a folder written by ``python -m mt.export`` (never unpickles): ``format=hf`` runs on this
        project's engine, ``format=ctranslate2`` on CTranslate2 (``engine`` auto picks by the folder's format).
        ``decode_cfg`` overrides some or all of the decode settings stored at export; ``threads`` (CTranslate2
        only, 0 = its default)."""
        from mt.export.load import load_exported

        return load_exported(path, decode_cfg, engine, resolve_device(device), precision, threads).translator


def model_from_checkpoint(ckpt: dict, source: str, cache_dir: str | Path | None = None, weights: str = "checkpoint"
                          ) -> tuple[Seq2Seq, Tokenizer]:
    """Rebuild the model and its tokenizer from a loaded checkpoint dictionary (``weights``:
    :func:`mt.checkpoint.select_weights`)."""
    ckpt = select_weights(ckpt, weights, source)
    tokenizer = checkpoint_tokenizer(ckpt, source, cache_dir)
    try:  # a crafted config must not run other code: built without Hydra, only this project's model classes
        model = build_stored_model(dict(ckpt["hyper_parameters"]["model"]), tokenizer.vocab_size)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None
    load_model_state(model, model_state(ckpt), source)
    return model.eval(), tokenizer


def resolve_checkpoint(ckpt: str, run: str | None = None) -> Path:
    """The checkpoint file that ``ckpt=`` names: a ``.ckpt`` file; a training run folder (its best checkpoint
    from ``results.json``, else ``checkpoints/last.ckpt``); or ``best`` / ``last`` of the run folder ``run``."""
    if ckpt in ("best", "last"):
        if not run:
            raise CheckpointError(f"ckpt={ckpt} needs run=DIR, the training run folder to take it from")
        folder = Path(run)
        if not folder.is_dir():
            raise CheckpointError(f"run={run} is not a folder; pass a training run folder (outputs/train/<run>)")
        found = _best_checkpoint(folder) if ckpt == "best" else _last_checkpoint(folder)
        if found is None:
            what, other = (("results.json naming an existing best checkpoint (has the run finished?)", "last")
                           if ckpt == "best" else ("checkpoints/last.ckpt", "best"))
            raise CheckpointError(f"run folder {run} has no {what}; use ckpt={other} run={run} or pass a "
                                  "checkpoint file")
        return found
    path = Path(ckpt)
    if not path.is_dir():
        return path  # load_checkpoint reports a missing file
    found = _best_checkpoint(path) or _last_checkpoint(path)
    if found is None:
        raise CheckpointError(f"ckpt={ckpt} is a folder without a best checkpoint in results.json and without "
                              "checkpoints/last.ckpt; pass a training run folder or a .ckpt file")
    log.info("ckpt=%s: using %s", ckpt, found)
    return found


def _best_checkpoint(run: Path) -> Path | None:
    """The best checkpoint that ``run/results.json`` names, looked up as written, then inside ``run``."""
    try:
        best = json.loads((run / "results.json").read_text(encoding="utf-8")).get("best_checkpoint")
    except (OSError, ValueError, AttributeError):
        return None
    if not best:
        return None
    for candidate in (Path(best), run / "checkpoints" / Path(best).name):
        if candidate.is_file():
            return candidate
    return None


def _last_checkpoint(run: Path) -> Path | None:
    last = run / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None
