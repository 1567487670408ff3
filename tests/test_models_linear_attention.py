"""Kernelized linear attention against plain references: chunked causal form, recurrence, masks, bf16, memory."""

from __future__ import annotations

import pytest
import torch

from mt.models.linear_attention import LinearState, causal_linear_attention, feature_map, linear_attention


def qkv(length: int, seed: int = 0, dtype: torch.dtype = torch.float64, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    """Random q, k, v (B=2, h=3, T, dh=5)."""
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.randn(2, 3, length, 5, generator=g, dtype=torch.float64) * scale).to(dtype) for _ in range(3))


def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_j mask * phi(q) . phi(k_j) v_j / sum_j mask * phi(q) . phi(k_j), in float64. mask (.., T, S)."""
    weights = (feature_map(q.double()) @ feature_map(k.double()).transpose(-2, -1)) * mask  # (B, h, T, S)
    return (weights @ v.double()) / (weights.sum(-1, keepdim=True) + 1e-6)


@pytest.mark.parametrize("length", [1, 5, 8, 13])
@pytest.mark.parametrize("chunk", [1, 4, 64])
def test_chunked_causal_form_equals_the_causal_reference(length: int, chunk: int) -> None:
    q, k, v = qkv(length)
    out, state = causal_linear_attention(q, k, v, None, chunk)
    causal = torch.ones(length, length).tril()  # (T, T)
    torch.testing.assert_close(out.double(), reference(q, k, v, causal), atol=1e-5, rtol=1e-5)
    phi_k = feature_map(k.double())
    torch.testing.assert_close(state.s.double(), phi_k.transpose(-2, -1) @ v.double(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.z.double(), phi_k.sum(-2), atol=1e-5, rtol=1e-5)


def test_steps_from_a_state_equal_one_pass() -> None:
    """Positions fed one at a time (or in pieces) through the state give the one-pass outputs and state."""
    q, k, v = qkv(11, seed=1)
    whole, whole_state = causal_linear_attention(q, k, v, None, 4)
    state: LinearState | None = None
    outs = []
    for start, stop in [(0, 1), (1, 2), (2, 7), (7, 8), (8, 11)]:
        out, state = causal_linear_attention(q[:, :, start:stop], k[:, :, start:stop], v[:, :, start:stop], state, 4)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=2), whole, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(state.s, whole_state.s, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("queries", [1, 3, 9])  # 9 > dh: the factorised path; 1 and 3: explicit weights
def test_key_masked_attention_equals_the_reference(queries: int) -> None:
    q, _, _ = qkv(queries, seed=2)
    _, k, v = qkv(7, seed=3)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]  # (B, 1, 1, S)
    out = linear_attention(q, k, v, mask)
    torch.testing.assert_close(out.double(), reference(q, k, v, mask), atol=1e-5, rtol=1e-5)
    per_query = mask.expand(2, 1, queries, 7)  # (B, 1, T, S): the explicit path
    torch.testing.assert_close(linear_attention(q, k, v, per_query), out, atol=1e-6, rtol=1e-6)


def test_bf16_autocast_accumulates_in_float32() -> None:
    """A long bf16 sequence of large activations: finite output in bf16, float32 state, close to float32."""
    q, k, v = qkv(4096, seed=4, dtype=torch.float32, scale=4.0)
    exact, _ = causal_linear_attention(q, k, v, None, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = causal_linear_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), None, 64)
    assert out.dtype == torch.bfloat16 and state.s.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), exact, atol=0.1, rtol=0.05)


def saved_bytes(length: int) -> int:
    """Bytes autograd saves for backward in one causal linear attention over ``length`` positions."""
    q, k, v = (x.float().requires_grad_() for x in qkv(length, seed=5))
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        causal_linear_attention(q, k, v, None, 64)
    return sum(seen.values())


def test_saved_activations_grow_linearly() -> None:
    small, large = saved_bytes(1024), saved_bytes(4096)
    assert large <= 4.4 * small, (small, large)  # quadratic would be 16x
