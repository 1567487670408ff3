"""Decoding speed: greedy and beam search over the validation set, batched against one sentence at a time,
and the per-token latency of incremental decoding against position (cached / uncached Transformer, LSTM).

Decoding goes through the pipeline's own path (``Translator.batches`` for token-budget source batches,
``decode_batch`` for the search). Without a checkpoint the model has random weights, which would stop at an
arbitrary length: then every sentence gets exactly ``random_output_tokens`` tokens (min_len = max_len).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from mt.api import (
    Batch,
    DecoderState,
    Seq2Seq,
    Tokenizer,
    Translator,
    autocast_for,
    decode_batch,
    search_config,
)
from mtlab.bench.models import ModelSpec
from mtlab.bench.system import synchronize


@dataclass
class DecodeSpeed:
    """One pass of a search over a set of sentences."""

    preset: str
    beam: int
    sentences: int
    output_tokens: int  # emitted tokens, EOS not counted
    seconds: float
    sent_s: float
    tok_s: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LatencyCurve:
    """Median wall-clock time of one ``step`` call at each position 1..N (milliseconds)."""

    name: str  # e.g. "transformer cached"
    preset: str
    variant: str  # the model's decoding variant (traits.decoding_variants), e.g. "cached" / "uncached"
    family: str  # traits.family
    decoder_state: str  # traits.decoder_state: "growing" (cache) or "constant"
    ms: list[float]  # ms[i] = position i + 1
    state_bytes: list[int]  # bytes of the decoder state after position i + 1 (each tensor counted once)
    early_ms: float  # mean over the first tenth of the positions (from position 2)
    late_ms: float  # mean over the last tenth
    growth: float  # late_ms / early_ms

    def as_dict(self) -> dict:
        return asdict(self)

    def at(self, position: int, half_window: int = 5) -> float:
        """Median latency over positions position +- half_window (clipped), in ms."""
        lo, hi = max(1, position - half_window), min(len(self.ms), position + half_window)
        return statistics.median(self.ms[lo - 1:hi])


def translator_for(spec: ModelSpec, tokenizer: Tokenizer, vocab_size: int, decode_cfg: DictConfig,
                   device: torch.device, cfg: DictConfig, seed: int) -> tuple[Translator, bool]:
    """A Translator around the checkpoint's model, or a random one with a fixed output length; trained?"""
    trained = spec.trained()
    decode = OmegaConf.to_container(decode_cfg, resolve=True)
    if trained is not None:
        model, tokenizer = trained
    else:
        model = spec.build(vocab_size, seed)
        n = int(cfg.random_output_tokens)
        decode.update(max_len_a=0.0, max_len_b=n, min_len=n)
    return Translator(model, tokenizer, decode, device=device, precision=str(cfg.precision)), trained is not None


def _search(translator: Translator, beam: int) -> object:
    return search_config({**translator.decode_cfg, "beam_size": beam, "n_best": 1})


def time_decoding(translator: Translator, batches: list[Batch], beam: int) -> tuple[float, int]:
    """Seconds to decode ``batches`` with ``beam`` and the number of output tokens (EOS not counted)."""
    cfg, device = _search(translator, beam), translator.device
    tokens = 0
    with autocast_for(device, translator.precision):
        synchronize(device)
        start = time.perf_counter()
        for batch in batches:
            tokens += sum(len(h) for h in decode_batch(translator.model, batch.to(device), cfg))
        synchronize(device)
    return time.perf_counter() - start, tokens


def decode_speed(preset: str, translator: Translator, sentences: list[str], beam: int) -> DecodeSpeed:
    """Decode every sentence once, in the pipeline's token-budget batches (tokenized before the clock)."""
    batches = list(translator.batches(sentences))
    time_decoding(translator, list(translator.batches(sentences[:4])), beam)  # warm-up
    seconds, tokens = time_decoding(translator, batches, beam)
    return DecodeSpeed(preset, beam, len(sentences), tokens, round(seconds, 4), len(sentences) / seconds,
                       tokens / seconds)


def one_at_a_time(translator: Translator, sentences: list[str], beam: int) -> float:
    """Seconds per sentence when each sentence is decoded alone."""
    batches = [b for s in sentences for b in translator.batches([s])]
    seconds, _ = time_decoding(translator, batches, beam)
    return seconds / len(sentences)


def evenly_spaced(items: list, k: int) -> list:
    """``k`` items spread over the list (positions 0, n/k, 2n/k, ...): no bias toward short or long ones."""
    k = min(k, len(items))
    return [items[i * len(items) // k] for i in range(k)]


@torch.inference_mode()
def step_latency(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, positions: int, repeats: int,
                 device: torch.device, precision: str, variant: str | None = None) -> tuple[list[float], list[int]]:
    """Median milliseconds of ``model.step`` at positions 1..N (argmax fed back), and the state's bytes."""
    times: list[list[float]] = [[] for _ in range(positions)]
    sizes = [0] * positions
    with autocast_for(device, precision):
        for _ in range(repeats):
            state = model.init_state(model.encode(src, src_lengths), variant)
            tokens = torch.full((src.size(0),), model.bos_id, dtype=torch.long, device=device)  # (B,)
            for i in range(positions):
                synchronize(device)
                start = time.perf_counter()
                logits, state = model.step(tokens, state)  # (B, V)
                tokens = logits.argmax(-1)  # (B,)
                synchronize(device)
                times[i].append(time.perf_counter() - start)
                sizes[i] = state_bytes(state)
    return [round(statistics.median(t) * 1000, 4) for t in times], sizes


def state_bytes(state: DecoderState) -> int:
    """Bytes of a decoder state's tensors, each storage once (shared views are not counted twice)."""
    seen: dict[int, int] = {}
    for t in state.values():
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def latency_curves(preset: str, translator: Translator, sentence: str, cfg: DictConfig) -> list[LatencyCurve]:
    """Latency against position, one curve per decoding variant the model declares (e.g. cached, uncached)."""
    model, device = translator.model, translator.device
    batch = next(iter(translator.batches([sentence]))).to(device)
    rows = int(cfg.latency_batch_size)
    src, lengths = batch.src.expand(rows, -1).contiguous(), batch.src_lengths.expand(rows).contiguous()  # (R, S)
    positions = int(cfg.latency_positions)
    if model.max_target_len is not None:
        positions = min(positions, model.max_target_len)
    traits = model.traits
    curves = []
    for variant in traits.decoding_variants:
        step_latency(model, src, lengths, min(positions, 4), 1, device, translator.precision, variant)  # warm-up
        ms, sizes = step_latency(model, src, lengths, positions, int(cfg.latency_repeats), device,
                                 translator.precision, variant)
        tenth = max(1, positions // 10)
        early = ms[1:1 + tenth] or ms[:1]
        late = ms[-tenth:]
        early_ms, late_ms = sum(early) / len(early), sum(late) / len(late)
        name = preset if len(traits.decoding_variants) == 1 else f"{preset} {variant}"
        curves.append(LatencyCurve(name, preset, variant, traits.family, traits.decoder_state, ms, sizes, round(early_ms, 4), round(late_ms, 4),
                                   round(late_ms / early_ms, 3)))
    return curves


def measure_decoding(specs: dict[str, ModelSpec], tokenizer: Tokenizer, vocab_size: int, sentences: list[str],
                     decode_cfg: DictConfig, device: torch.device, cfg: DictConfig, seed: int) -> dict:
    """Every decoding measurement for every preset, as plain data."""
    if cfg.max_sentences is not None:
        sentences = sentences[: int(cfg.max_sentences)]
    out: dict = {"sentences": len(sentences), "trained": {}, "speed": [], "batched_vs_single": [],
                 "latency": [], "cache_speedup": {}, "random_output_tokens": int(cfg.random_output_tokens)}
    for preset, spec in specs.items():
        translator, trained = translator_for(spec, tokenizer, vocab_size, decode_cfg, device, cfg, seed)
        out["trained"][preset] = trained
        speeds = {}
        for beam in sorted({*map(int, cfg.beams), int(cfg.single_beam)}):
            speeds[beam] = decode_speed(preset, translator, sentences, beam)
            if beam in map(int, cfg.beams):
                out["speed"].append(speeds[beam].as_dict())
        beam = int(cfg.single_beam)
        subset = evenly_spaced(sentences, int(cfg.single_sentences))
        if subset:
            single = one_at_a_time(translator, subset, beam)
            batched = speeds[beam].seconds / speeds[beam].sentences
            out["batched_vs_single"].append({"preset": preset, "beam": beam, "batched_s_per_sentence": batched,
                                             "single_s_per_sentence": single, "single_sentences": len(subset),
                                             "speedup": single / batched})
        curves = latency_curves(preset, translator, sentences[0], cfg)
        out["latency"] += [c.as_dict() for c in curves]
        by_variant = {c.variant: c for c in curves}
        if "cached" in by_variant and "uncached" in by_variant:
            at = min(int(cfg.latency_at), len(by_variant["cached"].ms))
            cached, uncached = by_variant["cached"].at(at), by_variant["uncached"].at(at)
            out["cache_speedup"][preset] = {"at": at, "cached_ms": round(cached, 4),
                                            "uncached_ms": round(uncached, 4), "ratio": uncached / cached}
        del translator
    return out
