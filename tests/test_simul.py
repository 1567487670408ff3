"""Wait-k decoding over the Seq2Seq interface: policy, no leakage of unread source, schedules, training == decoding,
streaming encoders (incremental == full), and the streaming agent == simulated greedy."""

from __future__ import annotations

import gzip

import pytest
import torch
from omegaconf import OmegaConf

from mt.batch import BOS_ID, EOS_ID
from mt.models import Seq2Seq, build_model
from mt.search import SearchConfig, beam_search, greedy_search
from mt.simul import wait_k_visibility
from mt.simul.latency import average_lagging
from mt.simul.search import simul_beam, simul_greedy
from mt.simul.steppers import PrefixStepper, ReencodingStepper, make_stepper
from mt.simul.training import wait_k_features
from tests.utils import CONF, SHARED_DATA

VOCAB = 40
TINY = {"lstm": {"embed_dim": 16, "encoder_hidden": 16, "encoder_layers": 2, "decoder_hidden": 24, "decoder_layers": 2},
        "transformer": {"d_model": 16, "n_heads": 2, "ffn_dim": 32, "encoder_layers": 2, "decoder_layers": 2,
                        "max_positions": 64}}
STREAMING = {"lstm": {"bidirectional": False}, "transformer": {"causal_encoder": True}}
# (preset, streaming?): the streaming variants and the full-sentence ones (test-time wait-k by re-encoding)
MODELS = [("lstm", True), ("transformer", True), ("lstm", False), ("transformer", False)]
CFG = SearchConfig(beam_size=3, len_penalty=0.6, max_len_a=1.5, max_len_b=4, min_len=1, n_best=1)


def tiny(preset: str, streaming: bool, vocab: int = VOCAB, seed: int = 0, **changes: object) -> Seq2Seq:
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "model" / f"{preset}.yaml"), TINY[preset],
                          STREAMING[preset] if streaming else {}, {"dropout": 0.0}, changes)
    torch.manual_seed(seed)
    return build_model(cfg, vocab).eval()


def sources(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sources with the given real lengths, EOS appended, padded: (B, S), (B,) EOS included."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths) + 1
    src = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
        src[i, n] = EOS_ID
    return src, torch.tensor([n + 1 for n in lengths])


def test_visibility_follows_the_policy():
    # |x| = 5 real tokens (6 with EOS), k = 2: position i sees i + 2 until i + 2 >= 5, then all 6
    vis = wait_k_visibility(torch.tensor([6, 2]), 6, 2)
    assert vis[0].tolist() == [2, 3, 4, 6, 6, 6]
    assert vis[1].tolist() == [2, 2, 2, 2, 2, 2]  # one real token: everything is read before the first write


@pytest.mark.parametrize("preset, streaming", MODELS)
def test_unread_source_never_changes_what_is_written(preset, streaming):
    """Logits at step s must not depend on source tokens the policy has not read by then, and must depend on
    them once read. Forced target prefix, k = 2, |x| = 8: step s sees min(s + 2, 8) tokens."""
    model = tiny(preset, streaming)
    src, lengths = sources([8])
    changed = src.clone()
    changed[0, 5:8] = (changed[0, 5:8] + 7 - 4) % (VOCAB - 4) + 4  # other tokens at positions 5..7
    prefix = torch.tensor([[BOS_ID, 5, 6, 7, 8, 9, 10]])
    steppers = [make_stepper(model, s, lengths, 2) for s in (src, changed)]
    with torch.no_grad():
        diffs = [float((a - b).abs().max()) for a, b in
                 ((steppers[0].logits(prefix[:, : s + 1], s), steppers[1].logits(prefix[:, : s + 1], s))
                  for s in range(6))]
    assert max(diffs[:4]) < 1e-5, diffs  # steps 0..3 read at most 5 tokens (positions 0..4)
    assert min(diffs[4:]) > 1e-4, diffs  # step 4 reads position 5: the change must show


def test_the_leak_test_detects_a_leaking_stepper():
    """Stepping a bidirectional encoder with only a cross-attention limit leaks; the check above catches it."""
    model = tiny("transformer", streaming=False)
    src, lengths = sources([8])
    changed = src.clone()
    changed[0, 6] = changed[0, 6] % (VOCAB - 5) + 5
    with torch.no_grad():
        a = PrefixStepper(model, src, lengths, 2).logits(torch.tensor([[BOS_ID]]), 0)
        b = PrefixStepper(model, changed, lengths, 2).logits(torch.tensor([[BOS_ID]]), 0)
    assert float((a - b).abs().max()) > 1e-4
    assert isinstance(make_stepper(model, src, lengths, 2), ReencodingStepper)


@pytest.mark.parametrize("preset, streaming", MODELS)
def test_large_k_is_full_sentence_decoding(preset, streaming):
    model = tiny(preset, streaming)
    src, lengths = sources([6, 3, 9])
    greedy = simul_greedy(model, src, lengths, 100, CFG)
    assert [h.tokens for h in greedy] == [h[0].tokens for h in greedy_search(model, src, lengths, CFG)]
    assert all(h.delays == [h.src_len] * len(h.tokens) for h in greedy)
    beams = simul_beam(model, src, lengths, 100, CFG)
    assert [h[0].tokens for h in beams] == [h[0].tokens for h in beam_search(model, src, lengths, CFG)]


@pytest.mark.parametrize("preset, streaming", MODELS[:2])
def test_greedy_schedule_and_beam_commits(preset, streaming):
    model = tiny(preset, streaming)
    src, lengths = sources([7, 4, 10])
    k = 3
    for hyp, n in zip(simul_greedy(model, src, lengths, k, CFG), [7, 4, 10], strict=True):
        assert hyp.src_len == n and hyp.tokens
        assert hyp.delays == [min(t + k - 1, n) for t in range(1, len(hyp.tokens) + 1)]
        if len(hyp.tokens) == n:  # equal lengths: wait-k lags exactly k tokens (test_latency)
            assert average_lagging(hyp.delays, n) == pytest.approx(k)
    one = SearchConfig(**{**CFG.__dict__, "beam_size": 1})
    assert [(h[0].tokens, h[0].delays) for h in simul_beam(model, src, lengths, k, one)] == \
        [(h.tokens, h.delays) for h in simul_greedy(model, src, lengths, k, one)]
    for (hyp,), n in zip(simul_beam(model, src, lengths, k, CFG), [7, 4, 10], strict=True):
        assert len(hyp.delays) == len(hyp.tokens)
        assert all(k <= d <= n for d in hyp.delays) or n < k
        assert hyp.delays == sorted(hyp.delays)


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
def test_wait_k_training_computes_what_decoding_steps(preset):
    """Teacher-forced wait-k logits == the simulated decoder's logits along the same target prefix (the LSTM's
    bridge starts from the encoder state after the first visible prefix in both)."""
    model = tiny(preset, streaming=True)
    src, lengths = sources([9, 5])
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7, 8, 9, 10, 11], [BOS_ID, 12, 13, 14, 15, 16, 17, 18]])
    with torch.no_grad():
        taught = model.output_layer(wait_k_features(model, src, lengths, tgt_in, 3))  # (B, T, V)
        stepper = PrefixStepper(model, src, lengths, 3)
        stepped = torch.stack([stepper.logits(tgt_in[:, : s + 1], s) for s in range(tgt_in.size(1))], dim=1)
        full = model.decode(model.encode(src, lengths), tgt_in)
    torch.testing.assert_close(taught, stepped, atol=1e-5, rtol=1e-4)
    assert float((taught - full).abs().max()) > 1e-4  # the limit does change the logits


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
def test_incremental_reads_equal_full_encoding(preset):
    model = tiny(preset, streaming=True)
    assert model.traits.streaming and not tiny(preset, streaming=False).traits.streaming
    src, lengths = sources([9])
    with torch.no_grad():
        enc = model.encode(src, lengths)
        stream = model.start_stream(1, torch.device("cpu"))
        parts = []
        for lo, hi in ((0, 1), (1, 4), (4, 5), (5, 10)):  # one token and several at a time
            new, stream = model.read(stream, src[:, lo:hi])
            parts.append(new.memory)
    torch.testing.assert_close(torch.cat(parts, dim=1), enc.memory, atol=1e-5, rtol=1e-4)
    if enc.final is not None:
        torch.testing.assert_close(new.final, enc.final, atol=1e-5, rtol=1e-4)


def test_non_streaming_models_refuse_to_stream():
    from mt.errors import MTError

    with pytest.raises(MTError, match="causal_encoder=true"):
        tiny("transformer", streaming=False).start_stream(1, torch.device("cpu"))
    with pytest.raises(Exception, match="bridge=mean"):  # (Hydra wraps constructor errors)
        tiny("lstm", streaming=True, bridge="mean")


# --- the streaming agent ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lines_and_tokenizer(tmp_path_factory):
    from mt.tokenizer import Tokenizer

    path = SHARED_DATA / "multi30k" / "train.en.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [next(f).strip() for _ in range(400)]
    tok = Tokenizer.train(lines, tmp_path_factory.mktemp("spm") / "spm.model", model_type="unigram", vocab_size=300,
                          character_coverage=1.0, hard_vocab_limit=False, input_sentence_size=0, num_threads=1)
    return lines, tok


def test_word_by_word_tokenization_equals_the_sentence(lines_and_tokenizer):
    lines, tok = lines_and_tokenizer
    for line in lines[:200] + ["  two  spaces\tand tab ", "Zoë's café, 3.5 km!"]:
        by_word = [i for w in line.split() for i in tok.encode([w])[0]]
        assert by_word == tok.encode([line])[0], line


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
def test_agent_writes_what_simulated_greedy_writes(lines_and_tokenizer, preset):
    from mt.simul.agent import WaitKAgent

    lines, tok = lines_and_tokenizer
    model = tiny(preset, streaming=True, vocab=tok.vocab_size, seed=3)
    cfg = SearchConfig(beam_size=1, len_penalty=0.6, max_len_a=1.5, max_len_b=4, min_len=1, n_best=1)
    agent = WaitKAgent(model, tok, 2, cfg)
    for line in lines[200:206]:
        agent.reset()
        words = []
        for w in line.split():
            words += agent.read_word(w)
        words += agent.finish()
        ids = tok.encode([line])[0]
        src = torch.tensor([ids + [EOS_ID]])
        expected = simul_greedy(model, src, torch.tensor([len(ids) + 1]), 2, cfg)[0]
        assert (agent.out, agent.delays) == (expected.tokens, expected.delays)
        assert " ".join(words) == " ".join(tok.decode([expected.tokens])[0].split())


def test_training_features_follow_the_train_config():
    import random

    from mt.batch import Batch
    from mt.simul.training import training_features

    model = tiny("transformer", streaming=True)
    src, lengths = sources([9, 5])
    tgt_in = torch.tensor([[BOS_ID, 5, 6, 7, 8], [BOS_ID, 9, 10, 11, 12]])
    batch = Batch(src, lengths, torch.arange(2), tgt_in, tgt_in)
    with torch.no_grad():
        full = training_features(model, batch, {}, sample=True)  # a config from before the option: full sentence
        torch.testing.assert_close(model.output_layer(full), model(src, lengths, tgt_in))
        k3 = training_features(model, batch, {"wait_k": 3, "wait_k_multipath": False}, sample=True)
        torch.testing.assert_close(k3, wait_k_features(model, src, lengths, tgt_in, 3))
        random.seed(0)
        multipath = {"wait_k": 3, "wait_k_multipath": True}
        drawn = {float(model.output_layer(training_features(model, batch, multipath, sample=True)).sum())
                 for _ in range(12)}  # (layer-normed features sum to ~0 whatever k is; their logits do not)
        assert len(drawn) == 3  # k in {1, 2, 3}
        validation = training_features(model, batch, {"wait_k": 3, "wait_k_multipath": True}, sample=False)
        torch.testing.assert_close(validation, k3)


def test_causal_encoder_cache_grows_past_its_capacity():
    """40 one-token reads: the K/V buffers double (16 -> 32 -> 64 positions) and states stay those of a full pass."""
    model = tiny("transformer", streaming=True)
    src, lengths = sources([39])
    with torch.no_grad():
        stream = model.start_stream(1, torch.device("cpu"))
        parts = []
        for t in range(40):
            new, stream = model.read(stream, src[:, t:t + 1])
            parts.append(new.memory)
        torch.testing.assert_close(torch.cat(parts, dim=1), model.encode(src, lengths).memory, atol=1e-5, rtol=1e-4)
    assert int(stream["pos"]) == 40


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
def test_extending_memory_one_token_at_a_time_equals_the_whole_memory(preset):
    """Streaming decoders append source positions into spare capacity: one position at a time gives the logits
    of one extension by all of them, with O(log n) buffer copies; the state before an extension is unchanged."""
    from mt.models import EncoderOut

    model = tiny(preset, streaming=True)
    src = torch.randint(4, VOCAB, (2, 40), generator=torch.Generator().manual_seed(3))
    tgt = torch.randint(4, VOCAB, (2,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        stream = model.start_stream(2, torch.device("cpu"))
        first, stream = model.read(stream, src[:, :3])
        state = model.init_state(first)
        early, buffers, read = state, set(), []
        for n in range(3, 40):
            new, stream = model.read(stream, src[:, n:n + 1])
            read.append(new)
            state = model.extend_memory(state, EncoderOut(new.memory, new.mask, new.final))
            buffers |= {(k, t.untyped_storage().data_ptr()) for k, t in state.items() if t.dim() >= 3}
        rest = EncoderOut(torch.cat([e.memory for e in read], 1), torch.cat([e.mask for e in read], 1), None)
        whole = model.extend_memory(model.init_state(first), rest)
        got, _ = model.step(tgt, state)
        want, _ = model.step(tgt, whole)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        big = {k for k, _ in buffers}
        assert len(buffers) <= len(big) * 6  # 3 -> 40 positions: a handful of doublings per buffer, not 37 copies
        early_again, _ = model.step(tgt, early)
        first_only = model.init_state(EncoderOut(first.memory, first.mask, first.final))
        torch.testing.assert_close(early_again, model.step(tgt, first_only)[0], rtol=1e-5, atol=1e-5)
