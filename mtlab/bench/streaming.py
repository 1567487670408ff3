"""Cost of streaming as the source grows: compute time and state memory per incoming source token.

For each streaming model (its config must give ``traits.streaming``: ``model.bidirectional=false`` for the LSTM,
``model.causal_encoder=true`` for the Transformer, with enough ``max_positions``), one stream of random tokens is
run through the wait-k loop of :class:`mt.simul.agent.WaitKAgent` in its steady state: each incoming source
token is read by the incremental encoder (``read``), appended to the decoder's memory (``extend_memory``), and
one target token is written (``step``). Each of the three is timed for every token; a row reports, at a stream
length L, the median over the ``window`` tokens before L, and the state held after L tokens: the encoder's stream
state (LSTM: h, c; Transformer: the per-layer self-attention K/V cache, in doubling buffers: the bytes held,
up to twice those used) and the decoder's state (the source
memory it attends to, its keys or cross-attention K/V, and its own recurrent state or self-attention cache).
Random weights (preset sizes): the cost does not depend on the values.

``python -m mtlab.bench sections=[streaming]`` runs it (settings: the ``streaming`` node of conf/bench.yaml).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from omegaconf import DictConfig

from mt.api import EncoderOut, MTError, Seq2Seq, build_model
from mtlab.bench.system import synchronize
from mtlab.bench.table import format_table


@dataclass
class StreamRow:
    """One model at one stream length."""

    model: str
    length: int  # source tokens read so far
    read_ms: float  # encoder: read one more source token (median over the window)
    extend_ms: float  # decoder: attend to the new position too
    step_ms: float  # decoder: write one target token
    token_ms: float  # the three together (sum of medians)
    token_min_ms: float  # the fastest token of the window (all three): robust when the machine is shared
    encoder_state_bytes: int  # the encoder's stream state after ``length`` tokens
    decoder_state_bytes: int  # the decoder's state (memory, keys / cross K/V, own state) after ``length`` tokens

    def as_dict(self) -> dict:
        return asdict(self)


def state_bytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes held by the tensors of a state dict (each storage counted once)."""
    seen, total = set(), 0
    for t in state.values():
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def _timed(device: torch.device, fn, *args):  # noqa: ANN001, ANN202 - tiny local helper
    synchronize(device)
    start = time.perf_counter()
    out = fn(*args)
    synchronize(device)
    return out, (time.perf_counter() - start) * 1000.0


@torch.inference_mode()
def measure_stream(name: str, model: Seq2Seq, lengths: Sequence[int], device: torch.device, wait_k: int = 3,
                   window: int = 16, seed: int = 0) -> list[StreamRow]:
    """Run one stream up to ``max(lengths)`` source tokens; a row per length (see the module docstring)."""
    if not model.traits.streaming:
        raise MTError(f"{name}: not a streaming model; configure model.bidirectional=false (LSTM) or "
                      "model.causal_encoder=true (Transformer)")
    longest = max(lengths)
    for limit in (model.max_source_len, model.max_target_len):
        if limit is not None and longest + 1 > limit:
            raise MTError(f"{name}: a stream of {longest} tokens needs model.max_positions > {longest + 1}")
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, model.vocab_size, (longest + 1,), generator=gen).to(device)  # source and target ids
    stream = model.start_stream(1, device)
    first, stream = model.read(stream, tokens[None, :wait_k])  # the first k tokens, before any writing
    state = model.init_state(first)
    ms = {"read": [], "extend": [], "step": []}
    rows, wanted = [], sorted(set(lengths))
    for n in range(wait_k + 1, longest + 1):  # steady state: read one, attend to it, write one
        new, t_read = _timed(device, model.read, stream, tokens[None, n - 1:n])
        new, stream = new
        state, t_extend = _timed(device, model.extend_memory, state, EncoderOut(new.memory, new.mask, new.final))
        (_, state), t_step = _timed(device, model.step, tokens[n - wait_k - 1:n - wait_k], state)
        for key, value in (("read", t_read), ("extend", t_extend), ("step", t_step)):
            ms[key].append(value)
        if wanted and n == wanted[0]:
            wanted.pop(0)
            med = {k: statistics.median(v[-window:]) for k, v in ms.items()}
            fastest = min(sum(parts) for parts in zip(*(v[-window:] for v in ms.values()), strict=True))
            rows.append(StreamRow(name, n, round(med["read"], 4), round(med["extend"], 4), round(med["step"], 4),
                                  round(sum(med.values()), 4), round(fastest, 4), state_bytes(stream),
                                  state_bytes(state)))
    return rows


def growth(rows: list[StreamRow], key: str) -> float:
    """How a measure grows from the shortest to the longest length measured (ratio)."""
    first, last = getattr(rows[0], key), getattr(rows[-1], key)
    return last / first if first else float("inf")


def measure_streaming(models: dict[str, DictConfig], vocab_size: int, lengths: Sequence[int], device: torch.device,
                      wait_k: int = 3, window: int = 16, seed: int = 0) -> dict:
    """Every model config in ``models`` (name -> model node) -> rows, per-model growth ratios, plain data."""
    out_rows, summary = [], {}
    for name, cfg in models.items():
        torch.manual_seed(seed)
        model = build_model(cfg, vocab_size)
        rows = measure_stream(name, model, lengths, device, wait_k, window, seed)
        out_rows += [r.as_dict() for r in rows]
        summary[name] = {"params": model.num_parameters(),
                         "token_ms_growth": round(growth(rows, "token_ms"), 2),
                         "token_min_ms_growth": round(growth(rows, "token_min_ms"), 2),
                         "read_ms_growth": round(growth(rows, "read_ms"), 2),
                         "encoder_state_growth": round(growth(rows, "encoder_state_bytes"), 2),
                         "decoder_state_growth": round(growth(rows, "decoder_state_bytes"), 2)}
    return {"wait_k": wait_k, "window": window, "lengths": list(lengths), "device": str(device), "rows": out_rows,
            "growth": summary}


def format_streaming(result: dict) -> str:
    """The table ``python -m mtlab.bench`` prints for this section."""
    headers = ["model", "length", "read ms", "extend ms", "step ms", "per token ms", "fastest token ms",
               "encoder state KiB", "decoder state KiB"]
    rows = [[r["model"], r["length"], r["read_ms"], r["extend_ms"], r["step_ms"], r["token_ms"], r["token_min_ms"],
             r["encoder_state_bytes"] / 1024, r["decoder_state_bytes"] / 1024] for r in result["rows"]]
    return format_table(headers, rows)
