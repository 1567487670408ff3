"""Model construction from a ``conf/model/*.yaml`` node (Hydra ``_target_``)."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from mt.models.base import DecoderState, EncoderOut, ModelTraits, Seq2Seq, reorder_state, visibility_mask
from mt.models.composed import Decoder, Encoder, EncoderDecoder

__all__ = ["Decoder", "DecoderState", "Encoder", "EncoderDecoder", "EncoderOut", "ModelTraits", "Seq2Seq",
           "build_model", "reorder_state", "visibility_mask"]


def build_model(model_cfg: DictConfig, vocab_size: int) -> Seq2Seq:
    """Instantiate the model named by ``model_cfg._target_``; the vocabulary size comes from the tokenizer."""
    model = instantiate(model_cfg, vocab_size=vocab_size)
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"{model_cfg._target_} built a {type(model).__name__}, not a Seq2Seq")
    return model

