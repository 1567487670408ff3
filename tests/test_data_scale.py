"""Bounded memory at scale: shard-wise passes, sharded cache files, compact samplers, the bench's data section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from mt.data import TokenBudgetBatchSampler
from mt.data.sampler import pack, pack_sorted
from mt.data.shards import fresh, iter_column, read_columns, shard_bounds
from mtlab.bench.data_scale import build_corpus, measure_data_scale, rows

TINY_TOKENIZER = ["data.tokenizer.vocab_size=100", "data.tokenizer.hard_vocab_limit=false"]


def rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> Dataset:
    """A memory-mapped dataset of ~50 MB (200k rows of 250 characters)."""
    folder = tmp_path_factory.mktemp("mapped")
    text = [f"{i:08d} " + "x" * 240 for i in range(200_000)]
    ds = Dataset.from_dict({"text": text, "n": np.arange(200_000, dtype=np.int32)})
    return ds.map(lambda b: b, batched=True, cache_file_name=str(folder / "rows.arrow"))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_shard_wise_pass_keeps_mapped_pages_bounded(mapped):
    before = rss_file_mb()
    n = sum(len(batch) for batch in iter_column(mapped, "text", size=10_000))
    shard_wise = rss_file_mb() - before
    assert n == 200_000
    whole = fresh(mapped)  # the same pass through one mapping keeps every page it read resident
    before = rss_file_mb()
    m = sum(len(batch["text"]) for batch in whole.select_columns(["text"]).iter(batch_size=10_000))
    one_map = rss_file_mb() - before
    assert m == 200_000
    print(f"\nresident file pages after a 50 MB pass: shard-wise {shard_wise:.1f} MB, one mapping {one_map:.1f} MB")
    assert one_map > 25 and shard_wise < 10


def test_read_columns_keeps_the_stored_dtype_and_order(mapped):
    cols = read_columns(mapped, ["n"], size=30_001)
    assert cols["n"].dtype == np.int32 and (cols["n"] == np.arange(200_000)).all()
    assert shard_bounds(0, 5) == [(0, 0)] and shard_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]


def test_sampler_holds_a_few_bytes_per_pair():
    rng = np.random.default_rng(0)
    n = 200_000
    src = rng.integers(2, 100, size=n)
    s = TokenBudgetBatchSampler(src, src + 1, 4096, seed=0)
    held = sum(v.nbytes for v in vars(s).values() if isinstance(v, np.ndarray))
    assert held / n <= 8, f"{held / n:.1f} bytes per pair"
    assert s.src_lengths.dtype == np.int16
    assert sum(len(b) for b in s) == n


def test_pack_sorted_equals_pack():
    rng = np.random.default_rng(1)
    for budget in (50, 400, 4096):
        costs = np.sort(rng.integers(1, 300, size=3000))
        assert pack_sorted(costs, budget).tolist() == [list(b) for b in pack(costs, budget)]
    assert pack_sorted(np.zeros(0, np.int16), 10).shape == (0, 2)


def text_cfg(compose_cfg, folder: Path, cache: Path, *extra: str):
    return compose_cfg(
        "data=text", f"data.dir={folder}", "data.src=en", "data.tgt=de", f"paths.cache_dir={cache}",
        *TINY_TOKENIZER, *extra,
    )


def test_sharded_cache_gives_the_same_rows_and_counts(compose_cfg, shared_data_dir, tmp_path):
    from mt.data import TranslationDataModule

    corpus = build_corpus(shared_data_dir / "multi30k", 700, tmp_path / "c", "en", "de")
    one = TranslationDataModule(text_cfg(compose_cfg, corpus, tmp_path / "a").data, _paths(tmp_path / "a"))
    many = TranslationDataModule(
        text_cfg(compose_cfg, corpus, tmp_path / "b", "data.shard_size=97").data, _paths(tmp_path / "b")
    )
    assert len(json.loads((many.data.folder / "meta.json").read_text())["files"]["train"]) == 8
    assert one.stats()["splits"] == many.stats()["splits"]
    assert one.stats()["padding_fraction"] == many.stats()["padding_fraction"]
    cols = ["id", "src", "tgt", "src_text"]
    for split in ("train", "validation", "test"):
        assert one.data.splits[split].select_columns(cols)[:] == many.data.splits[split].select_columns(cols)[:]
    assert one.train_sampler().batches(1) == many.train_sampler().batches(1)
    again = TranslationDataModule(  # reloaded from the sharded cache
        text_cfg(compose_cfg, corpus, tmp_path / "b", "data.shard_size=97").data, _paths(tmp_path / "b")
    )
    assert again.stats()["splits"] == many.stats()["splits"]
    assert [b.ids.tolist() for b in again.val_dataloader()] == [b.ids.tolist() for b in many.val_dataloader()]


def test_build_corpus_lines_are_distinct_and_aligned(shared_data_dir, tmp_path):
    out = build_corpus(shared_data_dir / "multi30k", 29_005, tmp_path / "c", "en", "de")
    en = (out / "train.en").read_text().splitlines()
    de = (out / "train.de").read_text().splitlines()
    assert len(en) == len(de) == 29_005
    assert en[29_000] == en[0] + " #1" and de[29_004] == de[4] + " #1"
    assert len((out / "valid.de").read_text().splitlines()) == 1014


def test_bench_data_section_tiny(shared_data_dir, tmp_path):
    points = measure_data_scale(
        [3000], tmp_path, shared_data_dir / "multi30k", overrides=TINY_TOKENIZER, timeout_s=300
    )
    (row,) = rows(points)
    assert row["pairs"] == 3000 and 0 < row["kept"] <= 3000
    assert row["first_s"] > 0 and row["cached_s"] > 0
    assert 100 < row["first_peak_rss_mb"] < 4000 and 100 < row["cached_peak_rss_mb"] < 4000
    assert points[0].cached.stats["splits"] == points[0].first.stats["splits"]
    with pytest.raises(Exception, match="exists"):  # never measures a warm cache as a first preparation
        measure_data_scale([3000], tmp_path, shared_data_dir / "multi30k", overrides=TINY_TOKENIZER)


def _paths(cache: Path):
    from omegaconf import OmegaConf

    return OmegaConf.create({"cache_dir": str(cache)})
