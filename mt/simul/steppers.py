"""How simultaneous search gets next-token logits under a source visibility limit, through the Seq2Seq
interface only. Two ways, chosen by ``model.traits.streaming``:

* :class:`PrefixStepper` for streaming models (causal / unidirectional encoder): the encoder states of a
  prefix do not depend on later tokens, so encoding the whole known source once and limiting the decoder's
  cross-attention to the visible positions (``src_visible``) is exactly what reading token by token gives.
  The decoder's initial state is built from the encoding of the first visible prefix (so a recurrent bridge
  reads the encoder state after k tokens, not after the whole source), then it steps incrementally.
* :class:`ReencodingStepper` for full-sentence models (bidirectional encoder): test-time wait-k, the usual
  baseline. Every encoder state depends on the whole input, so the visible prefix is re-encoded whenever it
  grows and the decoder recomputes the target prefix against it (as STACL does for full-sentence models);
  nothing of the unread source can leak. This costs O(source) per read and O(target) per written token.
  (Limiting only the cross-attention of a bidirectional encoding would leak the unread source through the
  encoder states; it is not offered.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor

from mt.models.base import EncoderOut, Seq2Seq, reorder_state
from mt.simul.policy import step_visibility


def _prefix(src: Tensor, visible: Tensor) -> tuple[Tensor, Tensor]:
    """src (N, S), visible (N,) -> the visible prefixes (N, max visible) and their lengths (N,)."""
    width = int(visible.max())
    return src[:, :width], visible


class Stepper(ABC):
    """Next-token logits of N rows (sentences, or beams of sentences) under the wait-k visibility."""

    def __init__(self, model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int) -> None:
        self.model, self.src, self.src_lengths, self.k = model, src, src_lengths, k

    @abstractmethod
    def logits(self, prefix: Tensor, step: int) -> Tensor:
        """prefix (N, step + 1): BOS and the tokens written so far -> logits (N, V) of the next token."""

    def reorder(self, index: Tensor) -> None:
        """Keep / repeat / reorder rows: index (N',) into the current rows."""
        self.src = self.src.index_select(0, index)
        self.src_lengths = self.src_lengths.index_select(0, index)

    def visible(self, step: int) -> Tensor:
        """Encoder positions visible to the token written at ``step`` (step tokens written before): (N,)."""
        return step_visibility(self.src_lengths, step, self.k)


class PrefixStepper(Stepper):
    """Streaming encoder: encode once, step the decoder with ``src_visible`` (see the module docstring)."""

    def __init__(self, model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int) -> None:
        super().__init__(model, src, src_lengths, k)
        enc = model.encode(src, src_lengths)
        first = model.encode(*_prefix(src, self.visible(0)))  # the encoder's state after the first read
        self.state = model.init_state(EncoderOut(memory=enc.memory, mask=enc.mask, final=first.final))

    def logits(self, prefix: Tensor, step: int) -> Tensor:
        logits, self.state = self.model.step(prefix[:, -1], self.state, self.visible(step))  # (N, V)
        return logits

    def reorder(self, index: Tensor) -> None:
        super().reorder(index)
        self.state = reorder_state(self.state, index)


class ReencodingStepper(Stepper):
    """Full-sentence encoder: re-encode the visible prefix when it grows, recompute the target prefix."""

    def __init__(self, model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int) -> None:
        super().__init__(model, src, src_lengths, k)
        self.enc: EncoderOut | None = None
        self.enc_visible: Tensor | None = None  # (N,) the visibility self.enc was encoded with

    def logits(self, prefix: Tensor, step: int) -> Tensor:
        visible = self.visible(step)  # (N,)
        if self.enc is None or not bool((visible == self.enc_visible).all()):
            self.enc, self.enc_visible = self.model.encode(*_prefix(self.src, visible)), visible
        return self.model.output_layer(self.model.features(self.enc, prefix)[:, -1])  # only the last: (N, V)

    def reorder(self, index: Tensor) -> None:
        super().reorder(index)
        if self.enc is not None:
            e = self.enc
            self.enc = EncoderOut(memory=e.memory.index_select(0, index), mask=e.mask.index_select(0, index),
                                  final=None if e.final is None else e.final.index_select(0, index))
            self.enc_visible = self.enc_visible.index_select(0, index)


def make_stepper(model: Seq2Seq, src: Tensor, src_lengths: Tensor, k: int) -> Stepper:
    """The honest stepper for this model: prefix-limited stepping when its encoder streams, else re-encoding."""
    cls = PrefixStepper if model.traits.streaming else ReencodingStepper
    return cls(model, src, src_lengths, k)
