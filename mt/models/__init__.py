"""Model construction from a ``conf/model/*.yaml`` node (Hydra ``_target_``)."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from mt.models.base import DecoderState, EncoderOut, ModelTraits, Seq2Seq, reorder_state, visibility_mask
from mt.models.composed import Decoder, Encoder, EncoderDecoder

__all__ = ["Decoder", "DecoderState", "Encoder", "EncoderDecoder", "EncoderOut", "ModelTraits", "Seq2Seq",
           "MODEL_PACKAGE", "build_model", "foreign_targets", "reorder_state", "visibility_mask"]


MODEL_PACKAGE = "mt.models."  # a config read from a file may only name classes and builders from here


def foreign_targets(node: Any) -> list[str]:
    """Every ``_target_`` in a (plain) model config that is not in this project's models package."""
    if isinstance(node, dict):
        own = node.get("_target_")
        found = [str(own)] if own is not None and not str(own).startswith(MODEL_PACKAGE) else []
        return found + [t for v in node.values() for t in foreign_targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in foreign_targets(v)]
    return []


def build_model(model_cfg: DictConfig, vocab_size: int) -> Seq2Seq:
    """Instantiate the model named by ``model_cfg._target_``; the vocabulary size comes from the tokenizer."""
    model = instantiate(model_cfg, vocab_size=vocab_size)
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"{model_cfg._target_} built a {type(model).__name__}, not a Seq2Seq")
    return model

