"""Batching: token budget, bucketing, epochs, DDP sharding, evaluation order, collate, mid-epoch resume."""

from __future__ import annotations

import logging
from itertools import chain

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch

from mt.batch import BOS_ID, EOS_ID, PAD_ID
from mt.data import (
    EvalBatchSampler,
    ResumableDataLoader,
    TokenBudgetBatchSampler,
    collate_pairs,
    source_batches,
)

MAX_TOKENS = 400


@pytest.fixture(scope="module")
def lengths() -> tuple[np.ndarray, np.ndarray]:
    """(N,) src and tgt tensor lengths of a synthetic corpus, with one pair far above the budget."""
    rng = np.random.default_rng(0)
    src = rng.integers(2, 60, size=1000)
    tgt = np.clip(src + rng.integers(-5, 6, size=1000), 2, None)
    src[17] = 2 * MAX_TOKENS
    return src, tgt


def cost(batch: list[int], src: np.ndarray, tgt: np.ndarray) -> int:
    return len(batch) * int(max(src[batch].max(), tgt[batch].max()))


def sampler(lengths, **kw) -> TokenBudgetBatchSampler:
    return TokenBudgetBatchSampler(*lengths, MAX_TOKENS, **{"seed": 3, **kw})


# -- training sampler -------------------------------------------------------------------------------------
def test_budget_respected_and_oversize_pair_alone(lengths):
    s = sampler(lengths)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert all(cost(b, *lengths) <= MAX_TOKENS or len(b) == 1 for b in batches)
        assert [17] in batches  # longer than the budget: alone, not dropped


def test_single_rank_covers_every_pair_once_per_epoch(lengths):
    s = sampler(lengths)
    for epoch in range(3):
        s.set_epoch(epoch)
        ids = list(chain.from_iterable(s))
        assert sorted(ids) == list(range(1000))
        assert len(list(s)) == len(s)


def test_reshuffled_every_epoch_and_reproducible(lengths):
    s = sampler(lengths)
    e0, e1 = s.batches(0), s.batches(1)
    assert e0 != e1
    assert {tuple(sorted(b)) for b in e0} != {
        tuple(sorted(b)) for b in e1
    }  # membership changes, not only order
    assert sampler(lengths).batches(1) == e1  # a function of (seed, epoch)
    assert sampler(lengths, seed=4).batches(1) != e1
    assert len({len(s.batches(e)) for e in range(5)}) == 1  # fixed len() across epochs


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_shards_disjoint_and_equal(lengths, world_size):
    single = len(sampler(lengths))
    for epoch in range(2):
        shards = [sampler(lengths, rank=r, world_size=world_size).batches(epoch) for r in range(world_size)]
        assert len({len(b) for b in shards}) == 1  # same number of batches on every rank
        assert len(sampler(lengths, rank=1, world_size=world_size)) == len(shards[0])
        ids = [i for shard in shards for b in shard for i in b]
        assert len(ids) == len(set(ids))  # different batches, no pair twice
        assert single - len(shards[0]) * world_size < world_size  # at most W-1 batches left out


def test_fewer_batches_than_ranks_still_gives_each_rank_one(caplog):
    with caplog.at_level(logging.WARNING):
        shards = [
            TokenBudgetBatchSampler([5, 6], [5, 6], 1000, seed=0, rank=r, world_size=3) for r in range(3)
        ]
    assert [len(s) for s in shards] == [1, 1, 1] and "repeat" in caplog.text


def test_set_epoch_is_reached_through_lightning(lengths):
    """Lightning calls set_epoch on dataloader.sampler and dataloader.batch_sampler.sampler only."""
    loader = ResumableDataLoader(list(range(1000)), sampler(lengths), collate_fn=lambda x: x, num_workers=0)
    _set_sampler_epoch(loader, 5)
    assert loader.batch_sampler.epoch == 5


# -- evaluation sampler ----------------------------------------------------------------------------------
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_eval_every_id_exactly_once_across_ranks(lengths, world_size):
    shards = [
        EvalBatchSampler(*lengths, MAX_TOKENS, rank=r, world_size=world_size) for r in range(world_size)
    ]
    ids = [i for s in shards for b in s for i in b]
    assert sorted(ids) == list(range(1000))
    assert len({len(s) for s in shards}) == 1  # equal batch counts (no collective can hang)
    for s in shards:
        assert all(cost(b, *lengths) <= MAX_TOKENS or len(b) == 1 for b in s)
    order = [i for b in shards[0] for i in b]
    keys = np.maximum(*lengths)[order]
    assert (np.diff(keys) <= 0).all()  # longest first, sorted by length


def test_eval_tiny_split_on_many_ranks():
    shards = [EvalBatchSampler([4], None, 100, rank=r, world_size=2) for r in range(2)]
    assert [list(s) for s in shards] == [[[0]], []]


# -- collate and raw text --------------------------------------------------------------------------------
def test_collate_shift_and_padding():
    rows = [
        {"id": 7, "src": [10, 11, EOS_ID], "tgt": [20, 21, 22]},
        {"id": 2, "src": [12, EOS_ID], "tgt": [23]},
    ]
    b = collate_pairs(rows)
    assert b.src.tolist() == [[10, 11, EOS_ID], [12, EOS_ID, PAD_ID]]
    assert b.src_lengths.tolist() == [3, 2] and b.ids.tolist() == [7, 2]
    assert b.tgt_in.tolist() == [[BOS_ID, 20, 21, 22], [BOS_ID, 23, PAD_ID, PAD_ID]]
    assert b.tgt_out.tolist() == [[20, 21, 22, EOS_ID], [23, EOS_ID, PAD_ID, PAD_ID]]
    assert b.src.dtype == b.tgt_in.dtype == torch.long and b.n_tgt_tokens == 6


def test_source_batches_truncate_keep_order_and_empty(multi30k_datamodule, caplog):
    tok = multi30k_datamodule.tokenizer
    sentences = multi30k_datamodule.sources("validation")[:50] + ["", "dog " * 300]
    with caplog.at_level(logging.WARNING, logger="mt.data.collate"):
        batches = list(source_batches(tok, sentences, max_tokens=200, max_len=40))
    assert "truncated 1 of 52" in caplog.text
    ids = [i for b in batches for i in b.ids.tolist()]
    assert sorted(ids) == list(range(52))
    by_id = {
        i: row[:n].tolist()
        for b in batches
        for i, row, n in zip(b.ids.tolist(), b.src, b.src_lengths, strict=True)
    }
    assert by_id[50] == [EOS_ID]  # an empty sentence still gets a slot
    assert len(by_id[51]) == 41 and by_id[51][-1] == EOS_ID  # truncated to max_len, then EOS
    assert by_id[3][:-1] == tok.encode([sentences[3]])[0]
    assert all(b.tgt_in is None and b.tgt_out is None for b in batches)
    assert all(b.size * b.src.size(1) <= 200 for b in batches)


# -- real Multi30k ---------------------------------------------------------------------------------------
def test_padding_fraction_on_multi30k_train(multi30k_datamodule):
    stats = multi30k_datamodule.stats()
    assert 0 < stats["padding_fraction"] < 0.10
    s = multi30k_datamodule.train_sampler()
    assert all(s.padding_fraction(epoch) < 0.10 for epoch in (1, 2))
    print(
        f"\nMulti30k en-de train padding fraction: {stats['padding_fraction']:.4f} ({stats['train_batches']} batches)"
    )


def test_train_loader_yields_batches_within_budget(multi30k_datamodule):
    dm = multi30k_datamodule
    loader = dm.train_dataloader()
    seen = []
    for b in loader:
        assert b.size * max(b.src.size(1), b.tgt_in.size(1)) <= dm.cfg.max_tokens
        assert (b.tgt_in[:, 0] == BOS_ID).all() and (
            b.src[torch.arange(b.size), b.src_lengths - 1] == EOS_ID
        ).all()
        seen += b.ids.tolist()
    assert len(seen) == len(set(seen)) == dm.stats()["splits"]["train"]["kept"]


# -- mid-epoch resume -------------------------------------------------------------------------------------
def ids_of(batches) -> list[list[int]]:
    return [b.ids.tolist() for b in batches]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_continues_with_exactly_the_remaining_batches(multi30k_datamodule, num_workers):
    dm = multi30k_datamodule

    def loader() -> ResumableDataLoader:
        ds = dm.data.splits["train"].select_columns(["id", "src", "tgt"]).select(range(3000))
        rows = ds[:]
        s = TokenBudgetBatchSampler(
            [len(x) for x in rows["src"]], [len(x) + 1 for x in rows["tgt"]], 800, seed=1
        )
        return ResumableDataLoader(ds, s, collate_fn=collate_pairs, num_workers=num_workers)

    first = loader()
    first.batch_sampler.set_epoch(2)
    full = ids_of(first)
    it, k = iter(first), 7
    consumed = ids_of(next(it) for _ in range(k))  # workers prefetch more, but only k were handed out
    state = first.state_dict()
    assert state["epoch"] == 2 and state["consumed"] == k and consumed == full[:k]

    second = loader()  # a fresh process would build the same loader, then Lightning restores the state
    second.load_state_dict(state)
    assert ids_of(second) == full[k:]
    assert second.state_dict()["consumed"] == len(full)
    second.batch_sampler.set_epoch(3)  # the next epoch is complete again
    assert len(ids_of(second)) == len(full)


def test_state_from_a_finished_epoch_does_not_skip_the_next(multi30k_datamodule):
    loader = multi30k_datamodule.train_dataloader()
    n = len(list(loader))
    state = loader.state_dict()
    assert state == {"epoch": 0, "consumed": n, "batches": n}
    fresh = multi30k_datamodule.train_dataloader()
    fresh.load_state_dict(state)
    _set_sampler_epoch(fresh, 1)  # Lightning moves on to epoch 1 before iterating
    assert len(list(fresh)) == n
