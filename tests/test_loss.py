"""The fused, chunked projection + loss gives the unfused loss's values and gradients, for every model variant."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mt.batch import PAD_ID
from mt.loss import label_smoothed_nll, projected_label_smoothed_nll
from tests.model_cases import VARIANTS, make_src, make_tgt_in, tiny_model

V, D = 37, 12


def case(bias: bool, seed: int = 0) -> tuple[torch.Tensor, nn.Linear, torch.Tensor]:
    """features (3, 6, D) and targets (3, 6) with padding at the ends of two rows."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 6, D, generator=gen, dtype=torch.float64, requires_grad=True)
    output = nn.Linear(D, V, bias=bias).double()
    target = torch.randint(4, V, (3, 6), generator=gen)
    target[0, 4:] = PAD_ID
    target[2, 1:] = PAD_ID
    return features, output, target


def grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


@pytest.mark.parametrize("chunk", [1, 4, 1000])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_equals_unfused_values_and_gradients(chunk, bias):
    features, output, target = case(bias)
    params = [features, output.weight] + ([output.bias] if bias else [])
    ref_loss, ref_nll = label_smoothed_nll(output(features), target, 0.1)
    loss, nll = projected_label_smoothed_nll(features, output, target, 0.1, chunk)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(nll, ref_nll)
    # a scaled loss (the mean over tokens, a grad scaler) scales every gradient the same way
    for want, got in zip(grads(ref_loss * 0.37, *params), grads(loss * 0.37, *params), strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert not nll.requires_grad


def test_fused_without_grad_and_all_padding():
    features, output, target = case(bias=True)
    with torch.no_grad():
        loss, nll = projected_label_smoothed_nll(features, output, target, 0.0, 5)
        ref_loss, ref_nll = label_smoothed_nll(output(features), target, 0.0)
    torch.testing.assert_close(nll, ref_nll)
    torch.testing.assert_close(loss, nll)  # no smoothing: the loss is the NLL
    padded = torch.full_like(target, PAD_ID)
    loss, nll = projected_label_smoothed_nll(features, output, padded, 0.1, 5)
    assert float(loss.detach()) == 0.0 and float(nll) == 0.0
    assert torch.count_nonzero(torch.autograd.grad(loss, features)[0]) == 0
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        projected_label_smoothed_nll(features, output, target, 0.1, 0)


def test_fused_under_bf16_autocast_matches_autocast_logits():
    """Under autocast the products run in bf16 like the output layer's would; the rest stays fp32."""
    features, output, target = case(bias=False)
    features, output = features.detach().float().requires_grad_(), output.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_loss, _ = label_smoothed_nll(output(features), target, 0.1)
        loss, _ = projected_label_smoothed_nll(features, output, target, 0.1, 4)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-4, atol=1e-4)
    want, got = grads(ref_loss, features, output.weight), grads(loss, features, output.weight)
    for w, g in zip(want, got, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, w, rtol=0.02, atol=2e-3)  # both round G and the operands to bf16


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_projects_its_features_to_its_logits(variant):
    """decode == output_layer(features), and the fused loss over a real model's features trains the same."""
    model = tiny_model(variant).double()
    src, lengths = make_src([5, 3])
    tgt_in = make_tgt_in(2, 4)
    target = torch.roll(tgt_in, -1, dims=1)
    target[1, 2:] = PAD_ID
    enc = model.encode(src, lengths)
    torch.testing.assert_close(model.output_layer(model.features(enc, tgt_in)), model.decode(enc, tgt_in))
    params = [p for p in model.parameters() if p.requires_grad]
    ref, _ = label_smoothed_nll(model(src, lengths, tgt_in), target, 0.1)
    loss, _ = projected_label_smoothed_nll(model.features(model.encode(src, lengths), tgt_in), model.output_layer,
                                           target, 0.1, 3)
    torch.testing.assert_close(loss, ref)
    for want, got in zip(grads(ref, *params), grads(loss, *params), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-8)
