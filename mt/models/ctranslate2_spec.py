"""A model's CTranslate2 description (``ctranslate2.specs.TransformerSpec``), built from its own layers.

Only models whose parts are this project's Transformer encoder and decoder with softmax attention map onto
CTranslate2's Transformer: pre- or post-norm, ReLU feed-forward, fused q/k/v, sinusoidal positions (our table is
given explicitly: its sin/cos interleaving differs from CTranslate2's built-in one), scaled embeddings, shared or
separate embeddings, an output projection without bias. Any other model (LSTM, hybrid, linear attention, a causal
streaming encoder) raises
:class:`NotExportable`. Tools call :func:`ctranslate2_spec`; knowledge of layer names stays in this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor, nn

from mt.errors import MTError
from mt.models.base import Seq2Seq
from mt.models.composed import EncoderDecoder
from mt.models.transformer_decoder import TransformerDecoder
from mt.models.transformer_encoder import TransformerEncoder
from mt.models.transformer_layers import SOFTMAX_IMPLS, FeedForward, MultiHeadAttention, Residual


class NotExportable(MTError):
    """A model that CTranslate2 cannot represent."""


def ctranslate2_spec(model: Seq2Seq) -> Any:
    """``model`` as a ``ctranslate2.specs.TransformerSpec`` with every weight set (vocabulary not registered)."""
    from ctranslate2.specs import transformer_spec as ts

    encoder, decoder = _transformer_parts(model)
    pre_norm = encoder.layers[0].res_attn.pre_norm if len(encoder.layers) else True
    heads = encoder.layers[0].self_attn.n_heads if len(encoder.layers) else decoder.n_heads
    enc_spec = ts.TransformerEncoderSpec(len(encoder.layers), heads, pre_norm=pre_norm)
    dec_spec = ts.TransformerDecoderSpec(len(decoder.layers), heads, pre_norm=pre_norm)

    enc_spec.embeddings[0].weight = _np(encoder.embedding.embed.weight)
    enc_spec.position_encodings.encodings = _np(encoder.embedding.positions.table)
    for layer, spec in zip(encoder.layers, enc_spec.layer, strict=True):
        _self_attention(spec.self_attention, layer.self_attn, layer.res_attn)
        _ffn(spec.ffn, layer.ffn, layer.res_ffn)
    if pre_norm:
        _norm(enc_spec.layer_norm, encoder.norm)

    dec_spec.embeddings.weight = _np(decoder.embedding.embed.weight)
    dec_spec.position_encodings.encodings = _np(decoder.embedding.positions.table)
    for layer, spec in zip(decoder.layers, dec_spec.layer, strict=True):
        _self_attention(spec.self_attention, layer.self_attn, layer.res_self)
        _norm(spec.attention.layer_norm, layer.res_cross.norm)
        attn = layer.cross_attn
        _linear(spec.attention.linear[0], attn.q_proj.weight, attn.q_proj.bias)
        _linear(spec.attention.linear[1], _cat(attn.k_proj.weight, attn.v_proj.weight),
                _cat(attn.k_proj.bias, attn.v_proj.bias))
        _linear(spec.attention.linear[2], attn.out_proj.weight, attn.out_proj.bias)
        _ffn(spec.ffn, layer.ffn, layer.res_ffn)
    if pre_norm:
        _norm(dec_spec.layer_norm, decoder.norm)
    _linear(dec_spec.projection, decoder.output.weight, decoder.output.bias)

    spec = ts.TransformerSpec(enc_spec, dec_spec)
    spec.config.layer_norm_epsilon = float(_first_norm(model).eps)
    return spec


def _transformer_parts(model: Seq2Seq) -> tuple[TransformerEncoder, TransformerDecoder]:
    """The model's Transformer encoder and decoder, or :class:`NotExportable` saying why not."""
    family = model.traits.family
    why = None
    if not isinstance(model, EncoderDecoder):
        why = "it is not an encoder-decoder of this project's parts"
    elif type(model.encoder) is not TransformerEncoder or type(model.decoder) is not TransformerDecoder:
        # exact types: a subclass (e.g. the causal streaming encoder) computes something else
        why = (f"its parts are {type(model.encoder).__name__} + {type(model.decoder).__name__}; only "
               "TransformerEncoder + TransformerDecoder (full-source attention) map onto CTranslate2's TransformerSpec")
    else:
        impls = {m.impl for m in model.modules() if isinstance(m, MultiHeadAttention)}
        if not impls <= set(SOFTMAX_IMPLS):
            why = f"its attention ({', '.join(sorted(impls))}) is not softmax attention"
    if why is not None:
        raise NotExportable(f"a {family} model cannot be exported to CTranslate2: {why}; use format=hf (runs on "
                            "this project's engine)")
    return model.encoder, model.decoder


def _self_attention(spec: Any, attn: MultiHeadAttention, residual: Residual) -> None:
    _norm(spec.layer_norm, residual.norm)
    _linear(spec.linear[0], _cat(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight),
            _cat(attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias))
    _linear(spec.linear[1], attn.out_proj.weight, attn.out_proj.bias)


def _ffn(spec: Any, ffn: FeedForward, residual: Residual) -> None:
    _norm(spec.layer_norm, residual.norm)
    _linear(spec.linear_0, ffn.fc1.weight, ffn.fc1.bias)
    _linear(spec.linear_1, ffn.fc2.weight, ffn.fc2.bias)


def _norm(spec: Any, norm: nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _np(norm.weight), _np(norm.bias)


def _linear(spec: Any, weight: Tensor | np.ndarray, bias: Tensor | np.ndarray | None) -> None:
    spec.weight = _np(weight)  # (out, in), as nn.Linear stores it
    if bias is not None:
        spec.bias = _np(bias)


def _cat(*tensors: Tensor | None) -> np.ndarray | None:
    """Fuse projections along the output dimension (CTranslate2's q|k|v and k|v layouts)."""
    if any(t is None for t in tensors):
        return None
    return np.concatenate([_np(t) for t in tensors], axis=0)  # (n * out, in) or (n * out,)


def _np(t: Tensor | np.ndarray) -> np.ndarray:
    return t if isinstance(t, np.ndarray) else t.detach().cpu().float().numpy().copy()


def _first_norm(model: nn.Module) -> nn.LayerNorm:
    return next(m for m in model.modules() if isinstance(m, nn.LayerNorm))
