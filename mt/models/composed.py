"""A Seq2Seq composed of an :class:`Encoder` and a :class:`Decoder` that share embedding matrices.

Presets (``conf/model/*.yaml``) name a small builder class (``LSTMSeq2Seq``, ``Transformer``, ``Hybrid``,
``LinearTransformer``) whose flat keyword arguments are the config keys; it builds the embeddings and the two
parts and hands them to :class:`EncoderDecoder`, which implements the whole Seq2Seq interface by delegation.
A new combination is a new builder of a few lines, not a copy of encoder or decoder code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from mt.batch import PAD_ID
from mt.errors import MTError
from mt.models.base import DecoderState, EncoderOut, EncoderStream, ModelTraits, Seq2Seq


class Encoder(nn.Module, ABC):
    """Source side: ids -> :class:`EncoderOut`.

    Class attributes describe the part: ``max_source_len`` (longest input, None = any), ``attention_impls``
    (values its ``attention_impl`` option takes, empty when it has none), ``streaming`` (reads a source prefix
    incrementally; see :class:`ModelTraits`).
    """

    max_source_len: int | None = None
    attention_impls: tuple[str, ...] = ()
    streaming: bool = False

    @abstractmethod
    def forward(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        """src (B, S) ids, src_lengths (B,) -> EncoderOut with memory (B, S, M) and mask (B, S)."""

    def start_stream(self, batch_size: int, device: torch.device) -> EncoderStream:
        """Streaming encoders (``streaming = True``) override this and :meth:`read` (see Seq2Seq.read)."""
        raise self._not_streaming()

    def read(self, stream: EncoderStream, tokens: Tensor) -> tuple[EncoderOut, EncoderStream]:
        raise self._not_streaming()

    def _not_streaming(self) -> MTError:
        return MTError(f"{type(self).__name__} reads the whole source at once; streaming needs a model trained "
                       "with model.bidirectional=false (LSTM) or model.causal_encoder=true (Transformer)")


class Decoder(nn.Module, ABC):
    """Target side: teacher-forced ``features`` (projected by ``output``) and incremental ``init_state`` / ``step``
    (same logits).

    Class attributes: ``max_target_len`` (None = any), ``decoder_state`` ("growing" | "constant", see
    :class:`ModelTraits`), ``decoding_variants`` (first = default), ``attention_impls``.
    """

    max_target_len: int | None = None
    decoder_state: str = "constant"
    decoding_variants: tuple[str, ...] = ("default",)
    attention_impls: tuple[str, ...] = ()

    output: nn.Linear  # the vocabulary projection, features (..., D) -> logits (..., V)

    @abstractmethod
    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        """tgt_in (B, T) ids starting with BOS; src_visible None or (B, T) int64 -> (B, T, D) before ``output``."""

    @abstractmethod
    def init_state(self, enc: EncoderOut, variant: str) -> DecoderState:
        """Batch-first state for ``step``; variant is one of ``decoding_variants`` (already checked)."""

    @abstractmethod
    def step(self, tokens: Tensor, state: DecoderState,
             src_visible: Tensor | None = None) -> tuple[Tensor, DecoderState]:
        """tokens (B,), src_visible None or (B,) int64 -> logits (B, V) and the new state."""

    def source_state_keys(self, state: DecoderState) -> frozenset[str]:
        """As :meth:`Seq2Seq.source_state_keys`: the state entries that depend only on the source."""
        return frozenset()

    def extend_memory(self, state: DecoderState, new: EncoderOut) -> DecoderState:
        """Append newly read source positions to the memory ``state`` attends to (streaming)."""
        raise MTError(f"{type(self).__name__} cannot attend to a growing source")

    @abstractmethod
    def cross_attention(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        """Teacher-forced attention over source positions at each target position (B, T, S); rows sum to 1."""


def make_embeddings(vocab_size: int, dim: int, share: bool) -> tuple[nn.Embedding, nn.Embedding]:
    """Source and target embeddings (one module when ``share``), N(0, 1/dim) with a zero PAD row."""
    src = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    tgt = src if share else nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
    for emb in dict.fromkeys([src, tgt]):  # each matrix once, fixed order
        nn.init.normal_(emb.weight, std=dim**-0.5)
        nn.init.zeros_(emb.weight[PAD_ID])
    return src, tgt


def union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """The values of several tuples, first occurrence order, each once."""
    return tuple(dict.fromkeys(v for group in groups for v in group))


class EncoderDecoder(Seq2Seq):
    """Encoder + decoder (+ the embeddings they were built with); every Seq2Seq method delegates.

    traits: ``family`` from the builder; the rest combines what the parts declare.
    """

    def __init__(self, *, vocab_size: int, family: str, src_embed: nn.Embedding, tgt_embed: nn.Embedding,
                 encoder: Encoder, decoder: Decoder) -> None:
        super().__init__(vocab_size)
        self.family = family
        self.src_embed = src_embed  # also held by the encoder / decoder; registered here for inspection
        self.tgt_embed = tgt_embed
        self.encoder = encoder
        self.decoder = decoder
        self.max_source_len = encoder.max_source_len
        self.max_target_len = decoder.max_target_len

    @property
    def traits(self) -> ModelTraits:
        return ModelTraits(family=self.family, decoder_state=self.decoder.decoder_state,
                           decoding_variants=self.decoder.decoding_variants,
                           attention_impls=union(self.encoder.attention_impls, self.decoder.attention_impls),
                           streaming=self.encoder.streaming)

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        return self.encoder(src, src_lengths)

    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        return self.decoder.features(enc, tgt_in, src_visible)

    @property
    def output_layer(self) -> nn.Linear:
        return self.decoder.output

    def init_state(self, enc: EncoderOut, variant: str | None = None) -> DecoderState:
        return self.decoder.init_state(enc, self.check_variant(variant))

    def step(self, tokens: Tensor, state: DecoderState,
             src_visible: Tensor | None = None) -> tuple[Tensor, DecoderState]:
        return self.decoder.step(tokens, state, src_visible)

    def start_stream(self, batch_size: int, device: torch.device) -> EncoderStream:
        return self.encoder.start_stream(batch_size, device)

    def read(self, stream: EncoderStream, tokens: Tensor) -> tuple[EncoderOut, EncoderStream]:
        return self.encoder.read(stream, tokens)

    def extend_memory(self, state: DecoderState, new: EncoderOut) -> DecoderState:
        return self.decoder.extend_memory(state, new)

    def source_state_keys(self, state: DecoderState) -> frozenset[str]:
        return self.decoder.source_state_keys(state)

    def cross_attention(self, enc: EncoderOut, tgt_in: Tensor) -> Tensor:
        return self.decoder.cross_attention(enc, tgt_in)
