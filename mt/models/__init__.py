"""Model construction from a ``conf/model/*.yaml`` node (Hydra ``_target_``)."""

from __future__ import annotations

import importlib
import re
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from mt.models.base import DecoderState, EncoderOut, ModelTraits, Seq2Seq, reorder_state, visibility_mask
from mt.models.composed import Decoder, Encoder, EncoderDecoder

__all__ = ["Decoder", "DecoderState", "Encoder", "EncoderDecoder", "EncoderOut", "ModelTraits", "Seq2Seq",
           "build_model", "build_stored_model", "reorder_state", "stored_model_class", "visibility_mask"]

_TARGET = re.compile(r"(mt\.models\.[a-z_][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")


def build_model(model_cfg: DictConfig, vocab_size: int) -> Seq2Seq:
    """Instantiate the model named by ``model_cfg._target_`` (a composed ``conf/model`` node); the vocabulary size
    comes from the tokenizer."""
    model = instantiate(model_cfg, vocab_size=vocab_size)
    if not isinstance(model, Seq2Seq):
        raise TypeError(f"{model_cfg._target_} built a {type(model).__name__}, not a Seq2Seq")
    return model


def stored_model_class(target: object) -> type[Seq2Seq] | None:
    """The class a stored model config's ``_target_`` names when it is one of this package's models, else None.

    Only ``mt.models.<module>.<Class>`` with a :class:`Seq2Seq` subclass defined in this package qualifies: a
    name that walks through a module's attributes (``mt.models.base.torch.serialization.os.system``) does not.
    """
    match = _TARGET.fullmatch(str(target))
    if match is None:
        return None
    try:
        module = importlib.import_module(match.group(1))
    except ImportError:
        return None
    cls = getattr(module, match.group(2), None)
    if not (isinstance(cls, type) and issubclass(cls, Seq2Seq) and cls.__module__.startswith("mt.models.")):
        return None
    return cls


def build_stored_model(config: dict[str, Any], vocab_size: int) -> Seq2Seq:
    """Build a model from a config read from a file (a checkpoint's or an export's, i.e. untrusted): the class
    (:func:`stored_model_class`) is called with the stored values as they are, without Hydra, so no nested
    ``_target_``, interpolation or resolver in the file is ever evaluated. ``ValueError`` when the class is not
    one of this package's models or the values do not fit it (the caller names the file)."""
    cls = stored_model_class(config.get("_target_"))
    if cls is None:
        raise ValueError(f"model class {config.get('_target_')!r} is not one of this project's models "
                         "(mt.models.<module>.<Seq2Seq subclass>); refusing to build it")
    try:
        return cls(**{k: v for k, v in config.items() if k != "_target_"}, vocab_size=vocab_size)
    except TypeError as e:  # a missing, unknown or mistyped argument
        raise ValueError(f"the stored model config does not fit {cls.__name__} ({e})") from None
