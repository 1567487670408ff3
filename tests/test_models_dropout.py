"""The CPU dropout with byte masks (mt/models/dropout.py): rate, expectation, gradient, seeding, eval identity."""

from __future__ import annotations

import pytest
import torch

from mt.models.dropout import Dropout, dropout
from mt.models.transformer_layers import MultiHeadAttention


@pytest.mark.parametrize("p", [0.1, 0.2, 0.3, 0.5])
def test_drop_rate_and_scale(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    out = dropout(x, p)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 0.004  # p rounded to 1/256 (<= 0.002 off) plus sampling noise (~0.0005)
    assert abs(out.mean().item() - 1.0) < 0.005  # kept elements scaled so the expectation is unchanged
    kept = out[out != 0]
    assert torch.allclose(kept, kept[0].expand_as(kept))


@pytest.mark.parametrize("p", [0.001, 0.999])
def test_rates_a_byte_cannot_express_fall_back_to_torch(p: float) -> None:
    """p below 1/512 rounds to threshold 0 (nothing dropped), from 255.5/256 on to 256 (a division by zero): both
    go to F.dropout, which drops at the exact rate."""
    torch.manual_seed(0)
    out = dropout(torch.ones(1000, 1000), p)
    assert abs((out == 0).float().mean().item() - p) < 0.0005
    assert abs(out.mean().item() - 1.0) < 0.05


def test_mask_covers_every_element_of_odd_sizes() -> None:
    torch.manual_seed(0)
    x = torch.ones(3, 5, 7)  # 105 elements: not a multiple of the 8 bytes of one random word
    outs = torch.stack([dropout(x, 0.5) for _ in range(200)])
    frac = (outs == 0).float().mean(0)  # per-element drop frequency
    assert frac.min() > 0.3 and frac.max() < 0.7


def test_gradient_goes_through_the_same_mask() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 32, requires_grad=True)
    out = dropout(x, 0.3)
    out.sum().backward()
    scale = out[out != 0] / x.detach()[out != 0]
    assert torch.equal(x.grad == 0, out == 0)
    assert torch.allclose(x.grad[out != 0], scale)


def test_gradcheck() -> None:
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)

    def f(t: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)  # the same mask at every evaluation
        return dropout(t, 0.4)

    assert torch.autograd.gradcheck(f, (x,))


def test_seeded_runs_repeat_and_eval_is_identity() -> None:
    x = torch.randn(50, 40, dtype=torch.bfloat16)
    torch.manual_seed(7)
    a = dropout(x, 0.2)
    torch.manual_seed(7)
    b = dropout(x, 0.2)
    assert torch.equal(a, b) and a.dtype == torch.bfloat16
    layer = Dropout(0.2).eval()
    assert layer(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_attention_dropout_on_cpu_uses_the_same_function() -> None:
    """With attention dropout on CPU the layer runs the explicit-matrix path: without dropout it equals SDPA."""
    torch.manual_seed(0)
    sdpa = MultiHeadAttention(32, 4, attention_dropout=0.0, impl="sdpa")
    x = torch.randn(2, 5, 32)
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False
    want = sdpa(x, sdpa.project_kv(x), mask, is_causal=False)
    sdpa.attention_dropout = 0.5
    sdpa.train()
    torch.manual_seed(1)
    dropped = sdpa(x, sdpa.project_kv(x), mask, is_causal=False)
    assert not torch.allclose(dropped, want)  # dropout happened
    sdpa.eval()
    assert torch.allclose(sdpa(x, sdpa.project_kv(x), mask, is_causal=False), want, atol=1e-6)
