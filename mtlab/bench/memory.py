"""Memory of a training step against sequence length, and its growth exponent.

CPU: the bytes of the tensors autograd saves for backward during the forward pass (activations), counted
exactly with ``torch.autograd.graph.saved_tensors_hooks``: each storage once, parameters and buffers left
out. CUDA: the peak memory allocated by a whole training step (forward + backward) above what was allocated
before it (``torch.cuda.max_memory_allocated``); the saved-tensor count is recorded there too. The growth
exponent is the least-squares slope of log(bytes) against log(length) over the upper half of the lengths.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from omegaconf import DictConfig

from mt.api import Batch, Seq2Seq, autocast_for, batch_loss
from mtlab.bench.models import ModelSpec
from mtlab.bench.system import synchronize
from mtlab.bench.throughput import synthetic_batches


@dataclass
class MemoryPoint:
    """One sequence length: the curve's bytes (None when skipped), how long the measurement took."""

    length: int
    bytes: int | None
    seconds: float | None = None
    saved_bytes: int | None = None  # saved-for-backward activations (both devices)
    peak_bytes: int | None = None  # CUDA only: peak allocated by the step above the memory before it
    skipped: str | None = None  # why a length was not measured


@dataclass
class MemoryCurve:
    """Bytes against length for one model and attention implementation."""

    name: str  # e.g. "transformer sdpa"
    preset: str
    attention: str  # sdpa | math | n/a
    backend: str  # the kernel SDPA picks for these shapes (CPU/CUDA), "explicit matrix" for math
    metric: str  # what ``bytes`` is: saved activations (CPU) or peak allocated (CUDA)
    points: list[MemoryPoint] = field(default_factory=list)
    exponent: float | None = None  # growth exponent over the upper half of the measured lengths
    exponent_lengths: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class SavedBytes:
    """Context manager: the bytes of the distinct storages autograd saves for backward inside it.

    A storage saved by several nodes, or as several views, counts once; storages of ``exclude`` (parameters,
    buffers) do not count. Saved tensors are kept as they are (no copy, no offload).
    """

    def __init__(self, exclude: list[torch.Tensor] | None = None) -> None:
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude or []}
        self._seen: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._excluded:
            self._seen[ptr] = max(self._seen.get(ptr, 0), storage.nbytes())
        return t

    @property
    def total(self) -> int:
        return sum(self._seen.values())

    def __enter__(self) -> SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def saved_tensor_bytes(model: Seq2Seq, batch: Batch, smoothing: float, chunk: int | None, precision: str,
                       device: torch.device, backward: bool) -> int:
    """Bytes of the distinct storages autograd saves for backward in one training forward (+ backward), with
    the training loss (``chunk``: see :func:`mt.loss.batch_loss`)."""
    with SavedBytes(exclude=[*model.parameters(), *model.buffers()]) as saved, autocast_for(device, precision):
        loss_sum, _ = batch_loss(model, batch, smoothing, chunk)
    if backward:
        (loss_sum / batch.n_tgt_tokens).backward()
    return saved.total


def cuda_step_peak(model: Seq2Seq, batch: Batch, smoothing: float, chunk: int | None, precision: str,
                   device: torch.device) -> tuple[int, int]:
    """(peak bytes allocated by forward + backward above the memory before it, saved-tensor bytes)."""
    model.zero_grad(set_to_none=True)
    synchronize(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    saved = saved_tensor_bytes(model, batch, smoothing, chunk, precision, device, backward=True)
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    model.zero_grad(set_to_none=True)
    return peak, saved


def growth_exponent(points: list[MemoryPoint]) -> tuple[float | None, list[int]]:
    """Slope of log(bytes) vs log(length) over the upper half (at least 2) of the measured points."""
    measured = [p for p in points if p.bytes]
    upper = measured[len(measured) // 2:] if len(measured) >= 4 else measured[-2:]
    if len(upper) < 2:
        return None, []
    xs = [math.log(p.length) for p in upper]
    ys = [math.log(p.bytes) for p in upper]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return round(slope, 3), [p.length for p in upper]


def _over_budget(points: list[MemoryPoint], length: int, cfg: DictConfig) -> str | None:
    """Why ``length`` would exceed the budget, extrapolating the last two measurements (None: it fits)."""
    measured = [p for p in points if p.bytes]
    if not measured:
        return None
    last = measured[-1]
    scale = length / last.length
    if len(measured) >= 2:
        prev = measured[-2]
        step = math.log(last.length / prev.length)
        e_bytes = max(1.0, math.log(last.bytes / prev.bytes) / step)
        e_time = max(1.0, math.log(max(last.seconds, 1e-6) / max(prev.seconds, 1e-6)) / step)
    else:
        e_bytes = e_time = 2.0  # one point: assume quadratic growth, to be safe
    gib, seconds = last.bytes * scale**e_bytes / 2**30, last.seconds * scale**e_time
    if gib > float(cfg.max_gib):
        return f"extrapolated {gib:.1f} GiB > memory.max_gib={cfg.max_gib}"
    if seconds > float(cfg.max_seconds):
        return f"extrapolated {seconds:.0f} s > memory.max_seconds={cfg.max_seconds}"
    return None


def attention_kernels(model: Seq2Seq, batch: Batch, precision: str, device: torch.device) -> str:
    """The scaled-dot-product-attention kernels one training forward of ``model`` actually runs (profiled)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof, autocast_for(device, precision):
        model(batch.src, batch.src_lengths, batch.tgt_in)
    names = {e.name for e in prof.events() if "scaled_dot_product" in e.name and e.name.startswith("aten::_")}
    model.zero_grad(set_to_none=True)
    return "/".join(sorted(n.removeprefix("aten::_scaled_dot_product_") for n in names)) or "no SDPA kernel"


def measure_curves(specs: dict[str, ModelSpec], vocab_size: int, device: torch.device, cfg: DictConfig,
                   seed: int) -> list[MemoryCurve]:
    """One curve per model (two for models with ``attention_impl``: sdpa and math), lengths ascending."""
    lengths = sorted(int(n) for n in cfg.lengths)
    precision = str(cfg.precision)
    metric = ("peak allocated, forward + backward (CUDA)" if device.type == "cuda"
              else "saved activations, forward (CPU)")
    curves = []
    for preset, spec in specs.items():
        impls = list(spec.build(vocab_size, seed).traits.attention_impls) or [None]
        for impl in impls:
            changes: dict = {}
            if impl is not None:
                changes["attention_impl"] = impl
                if cfg.attention_dropout is not None:
                    changes["attention_dropout"] = float(cfg.attention_dropout)
            if "max_positions" in spec.cfg.model:  # position tables must reach the longest length
                changes["max_positions"] = max(lengths) + 1
            model = spec.build(vocab_size, seed, **changes).to(device).train()
            probe = synthetic_batches(1, int(cfg.batch_size), lengths[0], vocab_size, seed)[0].to(device)
            backend = attention_kernels(model, probe, precision, device)
            if impl is not None and "attention_dropout" in spec.cfg.model:
                preset_dropout = float(spec.cfg.model.attention_dropout)
                dropout = float(changes.get("attention_dropout", preset_dropout))
                if dropout != preset_dropout:  # what training with the preset's attention dropout gets
                    as_trained = spec.build(vocab_size, seed, **{**changes, "attention_dropout": preset_dropout})
                    trained = attention_kernels(as_trained.to(device).train(), probe, precision, device)
                    backend += f" (attention dropout {dropout:g}; with the preset's {preset_dropout:g}: {trained})"
            curve = MemoryCurve(preset if impl is None else f"{preset} {impl}", preset, impl or "n/a", backend, metric)
            smoothing, chunk = spec.label_smoothing, spec.loss_chunk
            for length in lengths:
                previous = curve.points[-1].skipped if curve.points else None  # longer ones stay skipped
                reason = previous or _over_budget(curve.points, length, cfg)
                if reason:
                    curve.points.append(MemoryPoint(length, None, skipped=reason))
                    continue
                batch = synthetic_batches(1, int(cfg.batch_size), length, vocab_size, seed)[0].to(device)
                start = time.perf_counter()
                try:
                    if device.type == "cuda":
                        peak, saved = cuda_step_peak(model, batch, smoothing, chunk, precision, device)
                        point = MemoryPoint(length, peak, saved_bytes=saved, peak_bytes=peak)
                    else:
                        saved = saved_tensor_bytes(model, batch, smoothing, chunk, precision, device, backward=False)
                        point = MemoryPoint(length, saved, saved_bytes=saved)
                except torch.cuda.OutOfMemoryError:
                    model.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
                    point = MemoryPoint(length, None, skipped="CUDA out of memory")
                point.seconds = round(time.perf_counter() - start, 3)
                curve.points.append(point)
            curve.exponent, curve.exponent_lengths = growth_exponent(curve.points)
            curves.append(curve)
            del model
    return curves
