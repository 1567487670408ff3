"""Bounded memory at scale: passes by plain reads, sharded cache files, compact samplers, the bench's data section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset

from mt.data import TokenBudgetBatchSampler
from mt.data.arrowfiles import RECORD_BATCH_ROWS, batched_rows, iter_column, iter_shards, write_batches
from mt.data.sampler import pack, pack_sorted
from mtlab.bench.data_scale import build_corpus, measure_data_scale, rows

TINY_TOKENIZER = ["data.tokenizer.vocab_size=100", "data.tokenizer.hard_vocab_limit=false"]


def rss_file_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssFile in /proc/self/status")


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory) -> Path:
    """A raw split file of ~50 MB (200k rows, 250 characters a side)."""
    out = tmp_path_factory.mktemp("raw") / "rows.arrow"
    rows = ({"id": i, "src": f"{i:08d} " + "x" * 240, "tgt": "y" * 250, "ctrl": 0} for i in range(200_000))
    assert write_batches(batched_rows(rows), out) == 200_000
    return out


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_passes_read_without_mapping(raw_file):
    before = rss_file_mb()
    assert sum(len(batch) for batch in iter_column(raw_file, "src")) == 200_000
    read = rss_file_mb() - before
    mapped = Dataset.from_file(str(raw_file))  # the same pass through a memory map keeps its pages resident
    before = rss_file_mb()
    assert sum(len(b["src"]) for b in mapped.select_columns(["src"]).iter(batch_size=10_000)) == 200_000
    through_map = rss_file_mb() - before
    print(f"\nresident file pages after a 50 MB pass: plain reads {read:.1f} MB, memory map {through_map:.1f} MB")
    assert through_map > 20 and read < 5


def test_shards_cut_exactly_and_keep_the_order(raw_file, tmp_path):
    cuts = [(a, b, t.num_rows) for a, b, t in iter_shards(raw_file, 65_536)]
    assert cuts == [(0, 65_536, 65_536), (65_536, 131_072, 65_536), (131_072, 196_608, 65_536),
                    (196_608, 200_000, 3392)]
    ids = [i for _, _, t in iter_shards(raw_file, 30_001) for i in t.column("id").to_pylist()]
    assert ids == list(range(200_000))
    empty = tmp_path / "empty.arrow"
    assert write_batches(iter([]), empty) == 0
    assert [(a, b, t.num_rows) for a, b, t in iter_shards(empty, 10)] == [(0, 0, 0)]


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

    corpus = build_corpus(shared_data_dir / "multi30k", 2500, tmp_path / "c", "en", "de")
    one = TranslationDataModule(text_cfg(compose_cfg, corpus, tmp_path / "a").data, _paths(tmp_path / "a"))
    many = TranslationDataModule(
        text_cfg(compose_cfg, corpus, tmp_path / "b", "data.shard_size=320").data, _paths(tmp_path / "b")
    )
    meta = json.loads((many.data.folder / "meta.json").read_text())
    assert len(meta["files"]["train"]) == 8
    first = json.loads((one.data.folder / "meta.json").read_text())["files"]["train"][0]
    with pa.OSFile(str(one.data.folder / first)) as f:  # big record batches: few headers to map when opened
        assert next(iter(pa.ipc.open_stream(f))).num_rows == min(2500, RECORD_BATCH_ROWS)
    assert one.stats()["splits"] == many.stats()["splits"]
    assert one.stats()["padding_fraction"] == many.stats()["padding_fraction"]
    cols = ["id", "src", "tgt", "src_text"]
    for split in ("train", "validation", "test"):
        assert one.data.splits[split].select_columns(cols)[:] == many.data.splits[split].select_columns(cols)[:]
    assert one.train_sampler().batches(1) == many.train_sampler().batches(1)
    procs = TranslationDataModule(  # each shard tokenized by 2 processes: files of both, in row order
        text_cfg(compose_cfg, corpus, tmp_path / "p", "data.shard_size=1250", "data.num_proc=2").data,
        _paths(tmp_path / "p"),
    )
    assert len(json.loads((procs.data.folder / "meta.json").read_text())["files"]["train"]) == 4
    assert procs.stats()["splits"] == one.stats()["splits"]
    assert procs.data.splits["train"].select_columns(cols)[:] == one.data.splits["train"].select_columns(cols)[:]
    again = TranslationDataModule(  # reloaded from the sharded cache
        text_cfg(compose_cfg, corpus, tmp_path / "b", "data.shard_size=320").data, _paths(tmp_path / "b")
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
