"""Every preset against the Seq2Seq contract: shapes, step == decode, reorder, padding, causality, low precision."""

from __future__ import annotations

import pytest
import torch

from mt.batch import BOS_ID
from mt.models import build_model, reorder_state, rnn
from mt.models.attention import build_attention
from tests.model_cases import (
    PRESETS,
    TINY,
    TRAITS,
    VARIANTS,
    VOCAB,
    init_state,
    load_preset,
    make_src,
    make_tgt_in,
    step_all,
    tiny_model,
)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([6, 4, 2])
    enc = model.encode(src, lengths)
    assert enc.memory.shape[:2] == (3, 6) and enc.mask.dtype == torch.bool
    assert enc.mask.sum(1).tolist() == [6, 4, 2]
    assert model.decode(enc, make_tgt_in(3, 5)).shape == (3, 5, VOCAB)
    state = init_state(model, enc, variant)
    assert all(v.size(0) == 3 for v in state.values()), "every state tensor must be batch-first"


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_step_matches_decode(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([7, 5, 3])
    tgt_in = make_tgt_in(3, 6)
    full = model(src, lengths, tgt_in)  # (B, T, V)
    torch.testing.assert_close(step_all(model, src, lengths, tgt_in, variant), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_reordered_state_steps_reordered_rows(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([7, 5, 3])
    state = init_state(model, model.encode(src, lengths), variant)
    _, state = model.step(torch.full((3,), BOS_ID), state)
    tokens = torch.tensor([5, 6, 7])
    logits, _ = model.step(tokens, state)
    index = torch.tensor([2, 0, 0, 1])
    reordered, _ = model.step(tokens[index], reorder_state(state, index))
    torch.testing.assert_close(reordered, logits[index], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_extra_source_padding_changes_nothing(variant: str) -> None:
    model = tiny_model(variant)
    tgt_in = make_tgt_in(2, 5)
    src, lengths = make_src([6, 3])
    padded, _ = make_src([6, 3], pad_to=10)
    enc, enc_padded = model.encode(src, lengths), model.encode(padded, lengths)
    torch.testing.assert_close(enc_padded.memory[:, :6][enc.mask], enc.memory[enc.mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(padded, lengths, tgt_in), model(src, lengths, tgt_in), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_all(model, padded, lengths, tgt_in), step_all(model, src, lengths, tgt_in),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_decoder_cannot_see_the_future(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([6, 4])
    tgt_in = make_tgt_in(2, 6)
    logits = model(src, lengths, tgt_in)
    for t in range(tgt_in.size(1) - 1):
        changed = tgt_in.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 - 4) % (VOCAB - 4) + 4  # other real tokens after t
        out = model(src, lengths, changed)
        torch.testing.assert_close(out[:, : t + 1], logits[:, : t + 1], atol=1e-6, rtol=1e-6)
        assert not torch.allclose(out[:, t + 1:], logits[:, t + 1:])


@pytest.mark.parametrize("variant", VARIANTS)
@torch.no_grad()
def test_bf16_autocast_gives_finite_logits(variant: str) -> None:
    model = tiny_model(variant)
    src, lengths = make_src([7, 2], pad_to=9)
    tgt_in = make_tgt_in(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, lengths, tgt_in)
        stepped = step_all(model, src, lengths, tgt_in)
    assert torch.isfinite(logits).all() and torch.isfinite(stepped).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kernel", [True, False])
def test_lstm_under_cpu_autocast_runs_with_or_without_a_low_precision_kernel(dtype, kernel, monkeypatch) -> None:
    """Where the CPU has no bf16 / fp16 LSTM kernel (AVX2-only machines: oneDNN refuses the call) the LSTM runs in
    float32, numbers equal to no autocast; where it has one, autocast's kernel. Either way it trains."""
    if kernel and not rnn.cpu_lstm_runs_in(dtype, training=True):
        pytest.skip(f"this CPU has no {dtype} LSTM training kernel")
    monkeypatch.setattr(rnn, "cpu_lstm_runs_in", lambda *_: kernel)
    torch.manual_seed(0)
    lstm = rnn.LSTM(4, 6, num_layers=2, batch_first=True)
    x, state = torch.randn(3, 5, 4), (torch.randn(2, 3, 6), torch.randn(2, 3, 6))  # (B, T, E); (L, B, H) each
    low = tuple(t.to(dtype) for t in state)  # a state made under autocast
    want, _ = lstm(x, tuple(t.float() for t in low))
    with torch.autocast("cpu", dtype=dtype):
        got, (h, c) = lstm(x, low)
    assert torch.isfinite(got).all() and h.shape == c.shape == (2, 3, 6)
    if not kernel:
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    got.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in lstm.parameters())


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_attention_mask_is_dtype_safe(kind: str, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    attn = build_attention(kind, 8, 8).to(dtype)
    memory = torch.randn(2, 5, 8, dtype=dtype)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out = attn(torch.randn(2, 3, 8, dtype=dtype), attn.project_keys(memory), memory, mask)
    assert torch.isfinite(out.context).all()
    assert out.weights[1, :, 2:].abs().max() == 0
    torch.testing.assert_close(out.weights.float().sum(-1), torch.ones(2, 3), atol=1e-2, rtol=0)


@pytest.mark.parametrize("preset", PRESETS)
def test_shared_embeddings_are_one_matrix(preset: str) -> None:
    cfg = load_preset(preset)
    cfg.update(TINY[preset])
    model = build_model(cfg, VOCAB)
    assert model.src_embed.weight is model.tgt_embed.weight is model.decoder.output.weight
    cfg.update(share_embeddings=False)
    unshared = build_model(cfg, VOCAB)
    assert unshared.num_parameters() > model.num_parameters()


@pytest.mark.parametrize("preset", PRESETS)
@torch.no_grad()
def test_traits_and_state_size(preset: str) -> None:
    """Each preset declares its family and decoder state; a "constant" state keeps its size while stepping."""
    cfg = load_preset(preset)
    cfg.update(TINY[preset])
    model = build_model(cfg, VOCAB).eval()
    traits = model.traits
    assert (traits.family, traits.decoder_state) == TRAITS[preset]
    assert model.check_variant(None) == traits.decoding_variants[0]
    src, lengths = make_src([5, 3])
    state = model.init_state(model.encode(src, lengths))
    sizes = []
    for t in range(4):
        _, state = model.step(torch.full((2,), BOS_ID if t == 0 else 5), state)
        sizes.append(sum(v.numel() for v in state.values()))
    assert (len(set(sizes)) == 1) == (traits.decoder_state == "constant"), sizes


def count(preset: str, vocab_size: int) -> int:
    with torch.device("meta"):  # no memory, no init cost: only the shapes matter
        return build_model(load_preset(preset), vocab_size).num_parameters()


@pytest.mark.parametrize(("presets", "vocab_size", "low", "high"), [
    (("lstm", "transformer", "linear_transformer", "hybrid"), 8000, 10e6, 20e6),
    (("lstm_base", "transformer_base"), 32000, 55e6, 65e6),
])
def test_presets_have_matched_sizes(presets: tuple[str, ...], vocab_size: int, low: float, high: float) -> None:
    sizes = {name: count(name, vocab_size) for name in presets}
    assert all(low <= n <= high for n in sizes.values()), sizes
    assert max(sizes.values()) - min(sizes.values()) <= 0.05 * max(sizes.values()), sizes
    if vocab_size == 8000:  # the sizes the README and the comparison report
        assert (sizes["lstm"], sizes["transformer"]) == (10_331_968, 10_211_584)


@pytest.mark.parametrize("pre_norm", [True, False])
def test_math_attention_matches_sdpa(pre_norm: bool) -> None:
    """attention_impl=math (explicit attention matrix) computes what SDPA computes: logits, steps, gradients."""
    models = {}
    for impl in ("sdpa", "math"):
        cfg = load_preset("transformer")
        cfg.update({**TINY["transformer"], "pre_norm": pre_norm, "attention_impl": impl})
        torch.manual_seed(0)
        models[impl] = build_model(cfg, VOCAB).eval()
    src, lengths = make_src([7, 5, 2], pad_to=8)
    tgt_in = make_tgt_in(3, 6)
    out = {impl: m(src, lengths, tgt_in) for impl, m in models.items()}
    torch.testing.assert_close(out["math"], out["sdpa"], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(step_all(models["math"], src, lengths, tgt_in), out["sdpa"], atol=1e-5, rtol=1e-5)
    for impl in out:
        out[impl].logsumexp(-1).sum().backward()
    for (name, p_sdpa), p_math in zip(models["sdpa"].named_parameters(), models["math"].parameters(), strict=True):
        torch.testing.assert_close(p_math.grad, p_sdpa.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("variant", ["transformer_pre_norm", "linear_transformer"])
@torch.no_grad()
def test_max_target_len_is_what_the_decoder_can_run(variant: str) -> None:
    """A decoder of P positions decodes P tokens (EOS included: the input at position t predicts token t + 1);
    search and training filters read max_target_len, so one less would waste a position, one more would crash."""
    model = tiny_model(variant)
    src, lengths = make_src([6, 4])
    enc = model.encode(src, lengths)
    n = model.max_target_len
    assert n == TINY[VARIANTS[variant][0]]["max_positions"]
    assert model.decode(enc, make_tgt_in(2, n)).shape == (2, n, VOCAB)
    with pytest.raises(IndexError):
        model.decode(enc, make_tgt_in(2, n + 1))


def test_hybrid_refuses_a_bridge_from_final_states() -> None:
    """The hybrid's Transformer encoder has no final state: bridge=final fails when the model is built (it used to
    pass and crash at the first batch)."""
    cfg = load_preset("hybrid")
    cfg.merge_with({**TINY["hybrid"], "bridge": "final"})
    with pytest.raises(Exception, match="bridge=final"):
        build_model(cfg, VOCAB)
