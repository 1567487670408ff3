"""The one search over the presets tests/test_search.py does not cover: states expand, reorder and shrink."""

from __future__ import annotations

import pytest
import torch

from mt.models import reorder_state
from mt.search import SearchConfig, search
from tests.model_cases import VARIANTS as ALL_VARIANTS
from tests.model_cases import VOCAB, init_state, make_src, tiny_model

VARIANTS = ["linear_transformer", "linear_transformer_linear_cross", "hybrid"]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("beam", [1, 4])
def test_translations_do_not_depend_on_batch_composition(variant: str, beam: int) -> None:
    # weights scaled 5x: peaked, context-dependent distributions. That also makes attention nearly hard, and in
    # float32 a rounding difference can flip a near-tie (measured: one position of a linear_transformer flips in
    # float32, step and decode agree to 1e-13 in float64), so the model runs in float64.
    model = tiny_model(variant).double()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(5.0)
    cfg = SearchConfig(beam_size=beam, len_penalty=0.6, max_len_a=1.2, max_len_b=3, min_len=1, n_best=min(beam, 2))
    lengths = [9, 3, 6, 1, 7]
    src, src_lengths = make_src(lengths, seed=3)
    together = search(model, src, src_lengths, cfg)
    for i, n in enumerate(lengths):
        alone = search(model, src[i:i + 1, :n], src_lengths[i:i + 1], cfg)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("variant", sorted(ALL_VARIANTS))
def test_source_state_is_kept_once_per_sentence(variant: str) -> None:
    """What a model names in source_state_keys beam search keeps once per sentence while the rest of the state has
    one row per hypothesis: those entries must not change with the target prefix, stepping such a state must give
    the logits and state of the fully copied one (checked after steps with a different token in every row, one
    with per-row source limits), and search gives the same translations either way."""
    model = tiny_model(variant).double()
    src, src_lengths = make_src([7, 4, 6], seed=5)
    state = init_state(model, model.encode(src, src_lengths), variant)
    keys = model.source_state_keys(state)
    assert keys and keys <= set(state)  # every decoder declares its cross-attention memory
    beams = 3
    rows = torch.arange(3).repeat_interleave(beams)
    copied, grouped = reorder_state(state, rows), reorder_state(state, rows, keep=keys)  # (3 * K) / (3) rows
    tokens = torch.arange(4, 4 + 3 * beams) % VOCAB  # a different token in every row
    limits = torch.arange(3 * beams) % 4 + 1  # per-row source limits, as simultaneous search gives them
    for visible in (None, limits, None):
        logits_copied, copied = model.step(tokens, copied, visible)
        logits_grouped, grouped = model.step(tokens, grouped, visible)
        assert torch.allclose(logits_grouped, logits_copied, atol=1e-10)
        tokens = (tokens * 5 + 1) % (VOCAB - 4) + 4
    for key in keys:
        assert torch.equal(copied[key], state[key].repeat_interleave(beams, dim=0)), key
        assert torch.equal(grouped[key], state[key]), key
    for key in set(state) - keys:
        assert torch.allclose(grouped[key].double(), copied[key].double(), atol=1e-10), key
    cfg = SearchConfig(beam_size=4, len_penalty=0.6, max_len_a=1.2, max_len_b=3, min_len=1, n_best=2)
    kept = search(model, src, src_lengths, cfg)
    model.source_state_keys = lambda state: frozenset()  # copy every entry per hypothesis
    every = search(model, src, src_lengths, cfg)
    assert [[h.tokens for h in s] for s in kept] == [[h.tokens for h in s] for s in every]
    assert [h.score for s in kept for h in s] == pytest.approx([h.score for s in every for h in s], abs=1e-9)
