"""mtlab.bench.streaming on tiny models: rows per length; the LSTM's encoder state is constant, the causal
Transformer's K/V cache grows with the stream; non-streaming configs are refused."""

from __future__ import annotations

import pytest
import torch

from mt.api import MTError, compose
from mtlab.bench.streaming import format_streaming, measure_streaming

TINY = {"lstm": ["model=lstm", "model.bidirectional=false", "model.embed_dim=16", "model.encoder_hidden=16",
                 "model.decoder_hidden=16", "model.encoder_layers=1", "model.decoder_layers=1"],
        "transformer": ["model=transformer", "model.causal_encoder=true", "model.d_model=16", "model.n_heads=2",
                        "model.ffn_dim=32", "model.encoder_layers=1", "model.decoder_layers=1",
                        "model.max_positions=128"]}


def test_streaming_rows_and_state_growth():
    models = {name: compose("train", overrides).model for name, overrides in TINY.items()}
    result = measure_streaming(models, 50, [20, 80], torch.device("cpu"), wait_k=3, window=4)
    rows = {(r["model"], r["length"]): r for r in result["rows"]}
    assert set(rows) == {("lstm", 20), ("lstm", 80), ("transformer", 20), ("transformer", 80)}
    assert rows["lstm", 20]["encoder_state_bytes"] == rows["lstm", 80]["encoder_state_bytes"]  # (h, c) only
    assert rows["transformer", 80]["encoder_state_bytes"] > rows["transformer", 20]["encoder_state_bytes"]
    for name in TINY:  # both decoders keep the source memory they attend to: it grows with the stream
        assert rows[name, 80]["decoder_state_bytes"] > rows[name, 20]["decoder_state_bytes"]
        assert all(rows[name, n]["token_ms"] > 0 for n in (20, 80))
    assert "fastest token ms" in format_streaming(result)


def test_non_streaming_model_is_refused():
    with pytest.raises(MTError, match="not a streaming model"):
        measure_streaming({"full": compose("train", TINY["lstm"][:1] + TINY["lstm"][2:]).model}, 50, [8],
                          torch.device("cpu"))
