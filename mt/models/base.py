"""The one interface every architecture implements; search and training use nothing else.

Everything is batch-first. A decoder state is a plain ``dict[str, Tensor]`` whose every tensor has the
batch on dimension 0, so search can expand or reorder any model's state with :func:`reorder_state`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mt.batch import BOS_ID, EOS_ID, PAD_ID

DecoderState = dict[str, Tensor]
EncoderStream = dict[str, Tensor]  # a streaming encoder's state between reads, batch on dim 0


@dataclass
class EncoderOut:
    """Encoder output: memory, its padding mask and, for encoders that have one, a fixed-size summary."""

    memory: Tensor  # (B, S, H) encoder states
    mask: Tensor  # (B, S) bool, True at real (non-pad) source positions
    final: Tensor | None = None  # (B, F) the encoder's final state (a recurrent encoder's), None when it has none


@dataclass(frozen=True)
class ModelTraits:
    """What tools may know about a model, declared by the model itself (tools never inspect classes).

    family: architecture family shown in reports and used to pair systems in comparisons
        ("transformer", "recurrent", "hybrid", "linear_transformer", ...).
    decoder_state: "growing" when the incremental decoder state grows with every emitted token (a key/value
        cache), "constant" when it has a fixed size (an LSTM's (h, c), a linear-attention recurrence).
    decoding_variants: names accepted by ``init_state(enc, variant=...)``; the first is the default
        (e.g. the Transformer's ("cached", "uncached"): uncached recomputes the prefix every step).
    attention_impls: values of the model config key ``attention_impl`` (empty when the model has none).
    streaming: the encoder is causal (each state depends only on the tokens before it) and reads a source
        incrementally (``start_stream`` / ``read``, with ``extend_memory`` for the decoder), so wait-k
        decoding never re-reads the prefix per source token.
    """

    family: str
    decoder_state: str
    decoding_variants: tuple[str, ...] = ("default",)
    attention_impls: tuple[str, ...] = ()
    streaming: bool = False


def reorder_state(state: DecoderState, index: Tensor, keep: Collection[str] = ()) -> DecoderState:
    """Select / repeat / reorder the batch entries of any model's decoder state.

    index: (B',) int64 indices into the current batch dimension. ``keep``: entries passed through as they are
    (beam search's source-only entries, one row per sentence: :meth:`Seq2Seq.source_state_keys`).
    """
    return {k: v if k in keep else v.index_select(0, index) for k, v in state.items()}


class Seq2Seq(nn.Module, ABC):
    """Encoder-decoder translation model.

    Subclasses implement ``encode``, ``features`` (+ ``output_layer``), ``init_state`` and ``step``. ``decode``
    over a whole prefix and repeated ``step`` calls must give the same logits (up to float error).
    """

    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID
    max_source_len: int | None = None  # longest input (tokens, EOS included) the encoder accepts; None = any
    max_target_len: int | None = None  # longest output (tokens, EOS included) the model can decode; None = any

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    @abstractmethod
    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        """src: (B, S) ids, src_lengths: (B,) -> EncoderOut with memory (B, S, H)."""

    @abstractmethod
    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        """Teacher forcing up to the vocabulary projection. tgt_in: (B, T) ids starting with BOS -> (B, T, D),
        with ``output_layer(features(...)) == decode(...)``; the training loss projects it chunk by chunk
        (:func:`mt.loss.projected_label_smoothed_nll`). src_visible: as in :meth:`decode`."""

    @property
    @abstractmethod
    def output_layer(self) -> nn.Linear:
        """The vocabulary projection: features (..., D) -> logits (..., V)."""

    def decode(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        """Teacher forcing. tgt_in: (B, T) ids starting with BOS -> logits (B, T, V).

        src_visible: optional (B, T) int64, how many source positions target position t may attend to
        (simultaneous / wait-k translation); the rest are masked. None = the whole source. See
        :func:`visibility_mask`.
        """
        return self.output_layer(self.features(enc, tgt_in, src_visible))  # (B, T, V)

    @property
    @abstractmethod
    def traits(self) -> ModelTraits:
        """What tools need to know about this model (see :class:`ModelTraits`)."""

    @abstractmethod
    def init_state(self, enc: EncoderOut, variant: str | None = None) -> DecoderState:
        """Start incremental decoding from the encoder output (state holds whatever the model needs).

        variant: one of ``traits.decoding_variants`` (None = the first, the default).
        """

    @abstractmethod
    def step(self, tokens: Tensor, state: DecoderState,
             src_visible: Tensor | None = None) -> tuple[Tensor, DecoderState]:
        """Advance one position. tokens: (B,) last emitted ids -> (logits (B, V), new state).

        src_visible: optional (B,) int64, how many source positions this position may attend to (as in
        ``decode``); stepping with the limits of positions 0..T-1 gives ``decode``'s logits.
        """

    def source_state_keys(self, state: DecoderState) -> frozenset[str]:
        """The entries of ``state`` that depend only on the source sentence (e.g. cross-attention keys), never on
        the target prefix. Beam search keeps them once per sentence while every other entry has one row per
        hypothesis (sentence i owns rows ``i * g .. i * g + g - 1``), so ``step`` must accept such a state: its
        attention runs a sentence's g queries against the one copy (``mt/models/grouping.py``). Empty by default
        (every entry copied per hypothesis: always correct, only slower)."""
        return frozenset()

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """src (B, S), src_lengths (B,), tgt_in (B, T) -> logits (B, T, V)."""
        return self.decode(self.encode(src, src_lengths), tgt_in)

    def cross_attention(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        """Teacher-forced attention over source positions at each target position (B, T, S), rows summing to 1
        (multi-head attention: the last decoder layer's, averaged over heads). For alignments and heatmaps."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its attention")

    # --- streaming (models whose ``traits.streaming`` is True; the others raise) ---------------------------
    def start_stream(self, batch_size: int, device: torch.device) -> EncoderStream:
        """The encoder's state before reading any source token (batch-first)."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming encoder")

    def read(self, stream: EncoderStream, tokens: Tensor) -> tuple[EncoderOut, EncoderStream]:
        """Encode the next source tokens (B, n) -> EncoderOut of those n positions (memory (B, n, H), mask,
        final = the encoder's final state after them) and the new stream state. Positions already read are
        neither recomputed nor changed (the encoder is causal)."""
        raise NotImplementedError(f"{type(self).__name__} has no streaming encoder")

    def extend_memory(self, state: DecoderState, new: EncoderOut) -> DecoderState:
        """Let the decoder attend to newly read source positions too (``new`` from :meth:`read`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot extend its decoder's source memory")

    def check_variant(self, variant: str | None) -> str:
        """The decoding variant to use: ``variant`` checked against ``traits.decoding_variants`` (None = default)."""
        variants = self.traits.decoding_variants
        if variant is None:
            return variants[0]
        if variant not in variants:
            raise ValueError(f"{type(self).__name__} has no decoding variant {variant!r}; it has {', '.join(variants)}")
        return variant

    def num_parameters(self) -> int:
        """Unique trainable parameters (tied matrices counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @staticmethod
    def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
        """lengths (B,) -> bool mask (B, max_len), True at real positions."""
        return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def visibility_mask(mask: Tensor, src_visible: Tensor | None) -> Tensor:
    """Which source positions each target position may attend to.

    mask (B, S) bool True=real; src_visible None, (B,) for one position or (B, T) int64 -> (B, 1, S) when
    None or (B,), else (B, T, S); True = may attend. A limit below 1 is raised to 1 (attention needs at least
    one position); positions >= the limit and padding are masked.
    """
    if src_visible is None:
        return mask[:, None, :]  # (B, 1, S)
    limits = src_visible.clamp(min=1)
    if limits.dim() == 1:
        limits = limits[:, None]  # (B, 1)
    positions = torch.arange(mask.size(1), device=mask.device)  # (S,)
    return mask[:, None, :] & (positions[None, None, :] < limits[:, :, None])  # (B, T, S)
