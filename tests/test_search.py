"""Greedy and beam search: exact results on a stub model with hand-written probabilities, then real models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import Tensor

from mt.batch import EOS_ID, PAD_ID, UNK_ID
from mt.models import DecoderState, EncoderOut, ModelTraits, Seq2Seq, build_model
from mt.search import Hypothesis, SearchConfig, beam_search, greedy_search, length_penalty, search

A, B, C = 4, 5, 6  # the stub's words
STUB_VOCAB = 7
Table = dict[tuple[int, ...], dict[int, float]]



class StubModel(Seq2Seq):
    """A Seq2Seq whose next-token probabilities are looked up from per-sentence prefix tables.

    ``src[:, 0]`` picks the sentence's table; a table maps the prefix emitted so far (no BOS) to
    ``{token: probability}``; prefixes not listed use ``default``. Probability left over goes to UNK.
    """

    def __init__(self, tables: list[Table], default: dict[int, float]) -> None:
        super().__init__(STUB_VOCAB)
        self.tables, self.default = tables, default

    def encode(self, src: Tensor, src_lengths: Tensor) -> EncoderOut:
        return EncoderOut(memory=src[:, :, None].float(), mask=self.lengths_to_mask(src_lengths, src.size(1)))

    @property
    def traits(self) -> ModelTraits:
        return ModelTraits(family="stub", decoder_state="growing")

    def init_state(self, enc: EncoderOut, variant: str | None = None) -> DecoderState:
        batch = enc.memory.size(0)
        return {"table": enc.memory[:, 0, 0].long(), "prefix": torch.zeros(batch, 0, dtype=torch.long)}

    def step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        prefix = torch.cat([state["prefix"], tokens[:, None]], dim=1)  # (B, t + 1), BOS first
        probs = torch.zeros(prefix.size(0), STUB_VOCAB, dtype=torch.float64)
        for row, (table, seq) in enumerate(zip(state["table"].tolist(), prefix[:, 1:].tolist(), strict=True)):
            dist = self.tables[table].get(tuple(seq), self.default)
            for tok, p in dist.items():
                probs[row, tok] = p
            probs[row, UNK_ID] = max(0.0, 1.0 - sum(dist.values()))
        return probs.log().float(), {"table": state["table"], "prefix": prefix}

    def features(self, enc: EncoderOut, tgt_in: Tensor, src_visible: Tensor | None = None) -> Tensor:
        state = self.init_state(enc)
        logits = []
        for t in range(tgt_in.size(1)):
            out, state = self.step(tgt_in[:, t], state)
            logits.append(out)
        return torch.stack(logits, dim=1)  # (B, T, V): the stub's features are its log-probabilities

    @property
    def output_layer(self) -> torch.nn.Linear:
        identity = torch.nn.Linear(STUB_VOCAB, STUB_VOCAB, bias=False)
        torch.nn.init.eye_(identity.weight)
        return identity


# Beam finds a better hypothesis than greedy: greedy takes A (.6) then EOS (.4): .24; B then EOS is .36.
# With min_len 2, (A, A) and (A, B) are the best two-word prefixes and end there.
BEAM_BEATS_GREEDY: Table = {(): {A: 0.6, B: 0.4}, (A,): {EOS_ID: 0.4, A: 0.35, B: 0.25}, (B,): {EOS_ID: 0.9, A: 0.1},
                            (A, A): {EOS_ID: 0.9, A: 0.1}, (A, B): {EOS_ID: 0.8, A: 0.2}}
# The length penalty changes the winner: [A] (p .36, 2 tokens with EOS) vs [B, C] (p .32, 3 tokens).
LENPEN: Table = {(): {A: 0.6, B: 0.4}, (A,): {EOS_ID: 0.6, C: 0.4}, (B,): {C: 1.0},
                 (B, C): {EOS_ID: 0.8, A: 0.2}, (A, C): {EOS_ID: 0.3, A: 0.7}}
# EOS is unlikely everywhere (the default), so only max_len ends the hypotheses.
NEVER_ENDS: Table = {}
TABLES = [BEAM_BEATS_GREEDY, LENPEN, NEVER_ENDS]


def stub() -> StubModel:
    return StubModel(TABLES, default={A: 0.7, B: 0.2, EOS_ID: 0.1})


def stub_src(tables: list[int], lengths: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """Sources whose first token names the table; lengths default to 3."""
    lengths = lengths or [3] * len(tables)
    src = torch.full((len(tables), max(lengths)), PAD_ID, dtype=torch.long)
    for i, (table, n) in enumerate(zip(tables, lengths, strict=True)):
        src[i, :n] = EOS_ID
        src[i, 0] = table
    return src, torch.tensor(lengths)


def config(beam: int, alpha: float = 0.0, n_best: int = 1, min_len: int = 0, a: float = 0.0,
           b: int = 10) -> SearchConfig:
    return SearchConfig(beam_size=beam, len_penalty=alpha, max_len_a=a, max_len_b=b, min_len=min_len, n_best=n_best)


def expect(hyps: list[Hypothesis], expected: list[tuple[list[int], float]], alpha: float = 0.0) -> None:
    """Exact tokens; log-prob and length-normalised score of each (tokens, probability) pair."""
    assert [h.tokens for h in hyps] == [tokens for tokens, _ in expected]
    for h, (tokens, p) in zip(hyps, expected, strict=True):
        assert h.log_prob == pytest.approx(math.log(p), rel=1e-5)
        assert h.score == pytest.approx(math.log(p) / length_penalty(len(tokens) + 1, alpha), rel=1e-5)


def test_greedy_takes_the_argmax_path() -> None:
    src, lengths = stub_src([0, 1])
    hyps = greedy_search(stub(), src, lengths, config(beam=1))
    expect(hyps[0], [([A], 0.6 * 0.4)])
    expect(hyps[1], [([A], 0.6 * 0.6)])


def test_beam_finds_better_hypothesis_than_greedy_and_keeps_n_best_order() -> None:
    src, lengths = stub_src([0])
    expect(beam_search(stub(), src, lengths, config(beam=2, n_best=2))[0], [([B], 0.4 * 0.9), ([A], 0.6 * 0.4)])
    expect(beam_search(stub(), src, lengths, config(beam=2, n_best=1))[0], [([B], 0.4 * 0.9)])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_length_penalty_changes_the_winner(alpha: float) -> None:
    """[A] has the higher log-prob; [B, C] the better score once divided by ((5 + 3) / 6) ** 1.

    Also shows finished hypotheses do not starve the beam: [A] finishes at step 1 while two alive
    hypotheses (B C, A C) continue.
    """
    src, lengths = stub_src([1])
    short, long = ([A], 0.6 * 0.6), ([B, C], 0.4 * 1.0 * 0.8)
    expected = [short, long] if alpha == 0.0 else [long, short]
    expect(beam_search(stub(), src, lengths, config(beam=2, alpha=alpha, n_best=2))[0], expected, alpha)


def test_min_len_forbids_early_eos() -> None:
    src, lengths = stub_src([0])
    hyps = beam_search(stub(), src, lengths, config(beam=2, n_best=2, min_len=2))[0]
    expect(hyps, [([A, A], 0.6 * 0.35 * 0.9), ([A, B], 0.6 * 0.25 * 0.8)])
    greedy = greedy_search(stub(), src, lengths, config(beam=1, min_len=2))[0]
    expect(greedy, [([A, A], 0.6 * 0.35 * 0.9)])


def test_max_len_is_per_sentence_a_times_source_length_plus_b() -> None:
    """max_len = floor(1.0 * src_length - 1): 1 and 3 output tokens; EOS is forced at the limit."""
    src, lengths = stub_src([2, 2], lengths=[2, 4])
    cfg = config(beam=1, a=1.0, b=-1)
    greedy = greedy_search(stub(), src, lengths, cfg)
    expect(greedy[0], [([A], 0.7 * 0.1)])
    expect(greedy[1], [([A, A, A], 0.7**3 * 0.1)])
    beams = beam_search(stub(), src, lengths, config(beam=3, n_best=3, a=1.0, b=-1))
    assert all(len(h.tokens) <= 1 for h in beams[0]) and all(len(h.tokens) <= 3 for h in beams[1])
    # with only EOS affordable at once, the empty hypothesis (.1) beats [A] (.7 * .1)
    expect(beams[0], [([], 0.1), ([A], 0.07), ([B], 0.02)])


def test_beam_size_one_equals_greedy() -> None:
    src, lengths = stub_src([0, 1, 2], lengths=[3, 2, 5])
    cfg = config(beam=1, a=1.0, b=1)
    assert beam_search(stub(), src, lengths, cfg) == greedy_search(stub(), src, lengths, cfg)
    assert search(stub(), src, lengths, cfg) == greedy_search(stub(), src, lengths, cfg)


def test_stub_results_do_not_depend_on_the_batch() -> None:
    cfg = config(beam=3, alpha=0.6, n_best=3, a=1.0, b=1)
    src, lengths = stub_src([0, 1, 2, 1], lengths=[3, 2, 5, 4])
    together = beam_search(stub(), src, lengths, cfg)
    for i in range(4):
        alone = beam_search(stub(), src[i:i + 1, : int(lengths[i])], lengths[i:i + 1], cfg)
        assert alone[0] == together[i]


# --- real architectures --------------------------------------------------------------------------------------
VOCAB = 19
TINY = {
    "lstm": {"embed_dim": 12, "encoder_hidden": 8, "encoder_layers": 2, "decoder_hidden": 16, "decoder_layers": 2,
             "input_feeding": True},
    "transformer": {"d_model": 16, "n_heads": 4, "ffn_dim": 24, "encoder_layers": 2, "decoder_layers": 2},
}


def tiny_model(preset: str) -> Seq2Seq:
    """A tiny random model, its weights scaled up 5x: peaked, context-dependent distributions (a flat random
    model has near-tied beams that float noise could reorder) and some hypotheses that end before max_len."""
    conf = Path(__file__).resolve().parents[1] / "conf" / "model"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name=preset)
    cfg.update(TINY[preset])
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(5.0)
    return model


def random_src(lengths: list[int]) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    src = torch.full((len(lengths), max(lengths)), PAD_ID, dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, : n - 1] = torch.randint(4, VOCAB, (n - 1,), generator=g)
        src[i, n - 1] = EOS_ID
    return src, torch.tensor(lengths)


def assert_same(a: list[Hypothesis], b: list[Hypothesis]) -> None:
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
@pytest.mark.parametrize("beam", [1, 4])
def test_translations_do_not_depend_on_batch_composition(preset: str, beam: int) -> None:
    model = tiny_model(preset)
    cfg = SearchConfig(beam_size=beam, len_penalty=0.6, max_len_a=1.2, max_len_b=3, min_len=1, n_best=min(beam, 2))
    lengths = [9, 3, 6, 1, 7]
    src, src_lengths = random_src(lengths)
    together = search(model, src, src_lengths, cfg)
    assert len({len(h[0].tokens) for h in together}) > 1, "hypotheses should end at different lengths"
    for i, n in enumerate(lengths):
        assert_same(search(model, src[i:i + 1, :n], src_lengths[i:i + 1], cfg)[0], together[i])
    reordered = search(model, src.flip(0), src_lengths.flip(0), cfg)
    for i in range(len(lengths)):
        assert_same(reordered[len(lengths) - 1 - i], together[i])


@pytest.mark.parametrize("preset", ["lstm", "transformer"])
def test_real_beam_one_equals_greedy_and_beam_is_no_worse(preset: str) -> None:
    model = tiny_model(preset)
    src, src_lengths = random_src([8, 5, 3])
    greedy = greedy_search(model, src, src_lengths, config(beam=1, a=1.0, b=2))
    for g, b in zip(greedy, beam_search(model, src, src_lengths, config(beam=1, a=1.0, b=2)), strict=True):
        assert_same(g, b)
    for g, b in zip(greedy, beam_search(model, src, src_lengths, config(beam=5, a=1.0, b=2)), strict=True):
        assert b[0].score >= g[0].score - 1e-5
