"""Source-visibility limits (simultaneous / wait-k translation) in every decoder: src_visible (B, T)."""

from __future__ import annotations

import pytest
import torch

from mt.models import EncoderOut, Seq2Seq
from tests.model_cases import VARIANTS, init_state, load_preset, make_src, make_tgt_in, tiny_model


def wait_k(lengths: torch.Tensor, steps: int, k: int) -> torch.Tensor:
    """Wait-k limits (B, T): target position t may see min(k + t, length) source positions."""
    return torch.minimum(k + torch.arange(steps)[None, :], lengths[:, None])  # (B, T)


def step_with_limits(model: Seq2Seq, enc: EncoderOut, tgt_in: torch.Tensor, visible: torch.Tensor,
                     variant: str) -> torch.Tensor:
    """Logits (B, T, V) from stepping with the limit of each position."""
    state = init_state(model, enc, variant)
    logits = []
    for t in range(tgt_in.size(1)):
        out, state = model.step(tgt_in[:, t], state, src_visible=visible[:, t])
        logits.append(out)
    return torch.stack(logits, dim=1)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_stepping_with_limits_matches_decode_with_limits(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([7, 5, 3])
    tgt_in = make_tgt_in(3, 6)
    enc = model.encode(src, lengths)
    g = torch.Generator().manual_seed(4)
    for visible in (wait_k(lengths, 6, 2), torch.randint(1, 8, (3, 6), generator=g)):  # monotone and not
        full = model.decode(enc, tgt_in, src_visible=visible)  # (B, T, V)
        torch.testing.assert_close(step_with_limits(model, enc, tgt_in, visible, variant), full, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(full, model.decode(enc, tgt_in)), "limits below the length must change logits"


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_limit_at_or_beyond_the_length_is_no_limit(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([7, 5], pad_to=9)
    tgt_in = make_tgt_in(2, 4)
    enc = model.encode(src, lengths)
    visible = torch.tensor([[7, 9, 20, 7], [5, 6, 9, 30]])
    torch.testing.assert_close(model.decode(enc, tgt_in, src_visible=visible), model.decode(enc, tgt_in),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_hidden_source_positions_do_not_matter(variant: str) -> None:
    """Under wait-k limits, positions 0..t never see memory at positions >= their limit, in decode and step."""
    preset, overrides = VARIANTS[variant]
    if overrides.get("bridge", load_preset(preset).get("bridge")) == "mean":  # hybrid_no_bridge covers that decoder
        pytest.skip("bridge=mean starts the decoder from the mean of the whole memory (documented)")
    model = tiny_model(variant)
    src, lengths = make_src([7, 6])
    tgt_in = make_tgt_in(2, 5)
    enc = model.encode(src, lengths)
    visible = wait_k(lengths, 5, 2)  # (B, T): position t sees 2 + t source positions
    base = model.decode(enc, tgt_in, src_visible=visible)  # (B, T, V)
    g = torch.Generator().manual_seed(5)
    for t in range(tgt_in.size(1) - 1):
        memory = enc.memory.clone()
        for b in range(2):
            hidden = memory[b, int(visible[b, t]):]  # (S - k, M) positions hidden from 0..t
            hidden.copy_(torch.randn(hidden.shape, generator=g))
        noisy = EncoderOut(memory=memory, mask=enc.mask, final=enc.final)
        out = model.decode(noisy, tgt_in, src_visible=visible)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out[:, t + 1:], base[:, t + 1:]), "later positions see the changed memory"
        stepped = step_with_limits(model, noisy, tgt_in, visible, variant)
        torch.testing.assert_close(stepped[:, : t + 1], base[:, : t + 1], atol=1e-5, rtol=1e-5)
