"""Translation: the one decoding path shared by validation, test, evaluate.py and the Python API."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from mt.batch import EOS_ID, Batch
from mt.checkpoint import CheckpointError, load_checkpoint, load_model_state, model_state
from mt.models import build_model
from mt.models.base import Seq2Seq
from mt.search import SearchConfig, search
from mt.tokenizer import Tokenizer

log = logging.getLogger(__name__)


def search_config(decode_cfg: DictConfig | dict) -> SearchConfig:
    """The search settings of a ``decode`` config group."""
    d = decode_cfg
    return SearchConfig(beam_size=int(d["beam_size"]), len_penalty=float(d["len_penalty"]),
                        max_len_a=float(d["max_len_a"]), max_len_b=int(d["max_len_b"]),
                        min_len=int(d["min_len"]), n_best=int(d["n_best"]))


@torch.inference_mode()
def decode_batch(model: Seq2Seq, batch: Batch, cfg: SearchConfig) -> list[list[int]]:
    """Best hypothesis (token ids, no BOS/EOS) for each sentence of ``batch``, in batch order.

    An empty source (only EOS) gives an empty translation without searching, so that an empty line in is
    an empty line out, the same in validation, test and raw-text translation.
    """
    hyps = search(model, batch.src, batch.src_lengths, cfg)
    empty = (batch.src_lengths <= 1).tolist()
    return [[] if e else h[0].tokens for h, e in zip(hyps, empty, strict=True)]


def source_limit(model: Seq2Seq, decode_cfg: DictConfig | dict) -> int | None:
    """Longest source, in subwords (EOS not counted), that decoding accepts: ``decode.max_src_len`` capped by the
    model's own limit; longer sources are truncated (with a warning, counted), never dropped."""
    limit = decode_cfg.get("max_src_len")
    if model.max_source_len is not None:
        own = model.max_source_len - 1  # room for EOS
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


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for inference in ``precision`` (32, bf16, 16)."""
    precision = str(precision).split("-")[0]
    if precision in ("32", "64"):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(precision)
    if dtype is None:
        raise ValueError(f"precision={precision!r} is unknown; use 32, bf16 or 16")
    return torch.autocast(device.type, dtype=dtype)


class Translator:
    """Batched translation of raw sentences with a trained model (sentencepiece inside).

    >>> tr = Translator.from_checkpoint("outputs/.../checkpoints/last.ckpt")
    >>> tr.translate(["A man is riding a bike."])
    """

    def __init__(self, model: Seq2Seq, tokenizer: Tokenizer, decode_cfg: DictConfig | dict,
                 device: str | torch.device = "cpu", precision: str = "32") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.decode_cfg = decode_cfg
        self.search_cfg = search_config(decode_cfg)
        self.precision = str(precision)

    @classmethod
    def from_checkpoint(cls, path: str | Path, decode_cfg: DictConfig | dict | None = None,
                        device: str = "auto", precision: str = "32", cache_dir: str | Path | None = None
                        ) -> Translator:
        """Load model and tokenizer from a checkpoint; ``decode_cfg`` defaults to the one it was trained with."""
        ckpt = load_checkpoint(path)
        model, tokenizer = model_from_checkpoint(ckpt, str(path), cache_dir)
        if decode_cfg is None:
            decode_cfg = ckpt["hyper_parameters"]["decode"]
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(model, tokenizer, decode_cfg, device, precision)

    def batches(self, sentences: list[str]) -> Iterator[Batch]:
        from mt.data import source_batches

        return source_batches(self.tokenizer, sentences, int(self.decode_cfg["max_tokens"]),
                              source_limit(self.model, self.decode_cfg))

    def translate_batches(self, batches: Iterable[Batch], n: int) -> list[str]:
        """Decode batches whose ``ids`` index a list of ``n`` sentences; returns texts in id order."""
        out: list[str | None] = [None] * n
        with autocast_for(self.device, self.precision):
            for batch in batches:
                batch = batch.to(self.device)
                for i, tokens in zip(batch.ids.tolist(), decode_batch(self.model, batch, self.search_cfg),
                                     strict=True):
                    out[i] = self.tokenizer.decode([tokens])[0]
        missing = [i for i, t in enumerate(out) if t is None]
        if missing:
            raise RuntimeError(f"{len(missing)} of {n} sentences were not translated (first: {missing[:5]})")
        return out  # type: ignore[return-value]

    def translate(self, sentences: list[str]) -> list[str]:
        """Translate raw sentences (one per item); same count out as in, empty in gives empty out."""
        return self.translate_batches(self.batches(sentences), len(sentences))


def model_from_checkpoint(ckpt: dict, source: str, cache_dir: str | Path | None = None
                          ) -> tuple[Seq2Seq, Tokenizer]:
    """Rebuild the model and its tokenizer from a loaded checkpoint dictionary."""
    hp = ckpt["hyper_parameters"]
    tok_info = ckpt.get("tokenizer")
    if not tok_info or "model" not in tok_info:
        raise CheckpointError(f"{source} carries no tokenizer; it was not written by this project")
    tokenizer = Tokenizer.from_bytes(tok_info["model"].numpy().tobytes(), cache_dir=cache_dir)
    if tokenizer.sha256 != tok_info["sha256"]:
        raise CheckpointError(f"tokenizer stored in {source} does not match its recorded sha256")
    model = build_model(OmegaConf.create(hp["model"]), tokenizer.vocab_size)
    load_model_state(model, model_state(ckpt), source)
    return model.eval(), tokenizer
