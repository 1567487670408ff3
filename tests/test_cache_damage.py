"""A cache entry damaged by a kill or a full disk (truncated split, garbled tokenizer) is rebuilt with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

from mt.data import DataConfig, prepare
from tests.corpora import text_corpus

TOKENIZER = ["data.tokenizer.vocab_size=60", "data.tokenizer.hard_vocab_limit=false"]


def _prepare(compose_cfg, corpus: Path, cache: Path):
    cfg = compose_cfg("data=text", f"data.dir={corpus}", "data.src=xx", "data.tgt=yy", f"paths.cache_dir={cache}",
                      *TOKENIZER)
    return prepare(DataConfig.from_omegaconf(cfg.data), cache)


def _rows(prepared) -> dict[str, list]:
    return {name: [list(r) for r in prepared.splits[name]["src"]] for name in prepared.splits}


def test_truncated_split_and_garbled_tokenizer_are_rebuilt(compose_cfg, tmp_path, caplog):
    corpus, cache = text_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = _prepare(compose_cfg, corpus, cache)
    want, sha = _rows(first), first.tokenizer.sha256

    arrow = sorted(first.folder.glob("train*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])  # a write cut short
    with caplog.at_level(logging.WARNING):
        again = _prepare(compose_cfg, corpus, cache)
    assert "damaged or truncated; tokenizing again" in caplog.text
    assert _rows(again) == want and again.tokenizer.sha256 == sha

    caplog.clear()
    model = Path(again.tokenizer.path)
    model.write_bytes(b"garbage" * 100)  # a garbled sentencepiece model in the cache
    with caplog.at_level(logging.WARNING):
        third = _prepare(compose_cfg, corpus, cache)
    assert "the cached model" in caplog.text and "damaged" in caplog.text
    assert third.tokenizer.sha256 == sha and _rows(third) == want

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _prepare(compose_cfg, corpus, cache)  # intact now: reused without a warning
    assert "damaged" not in caplog.text
