"""Ship a trained model: a hub-style safetensors folder (``format=hf``) or a CTranslate2 model (``format=ctranslate2``).

``python -m mt.export ckpt=PATH format=hf|ctranslate2 out=DIR``; load with ``Translator.from_pretrained(DIR)`` or
``python evaluate.py model_dir=DIR``. Loading never unpickles: weights are safetensors (or CTranslate2's own
``model.bin``), everything else is JSON and the sentencepiece model.
"""

from mt.errors import MTError


class ExportError(MTError):
    """A model or folder that cannot be exported or loaded as an export (the message says why and what to do)."""


__all__ = ["ExportError"]
