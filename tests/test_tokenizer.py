"""Tokenizer: exact round trip on real Multi30k text, fixed special ids, caching, serialization."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import unicodedata
from pathlib import Path

import pytest
import sentencepiece as spm

from mt.batch import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from mt.tokenizer import MODEL_FILE, Tokenizer, TokenizerError, load_or_train

SETTINGS = {
    "model_type": "unigram",
    "vocab_size": 8000,
    "character_coverage": 1.0,
    "hard_vocab_limit": True,
    "input_sentence_size": 0,
    "num_threads": 1,
}


def read_gz(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


@pytest.fixture(scope="module")
def multi30k_train(shared_data_dir: Path) -> dict[str, list[str]]:
    return {lang: read_gz(shared_data_dir / "multi30k" / f"train.{lang}.gz") for lang in ("en", "de")}


@pytest.fixture(scope="module")
def tokenizer(multi30k_datamodule) -> Tokenizer:
    """The real joint en+de unigram model of the default config, trained on the full Multi30k train split."""
    return multi30k_datamodule.tokenizer


def test_round_trip_is_exact_on_multi30k_modulo_nfkc_and_whitespace(tokenizer, multi30k_train):
    # SentencePiece's default normalisation (nmt_nfkc) is NFKC plus collapsing/stripping whitespace, and
    # character_coverage=1.0 leaves no UNK on training text. So on real text decode(encode(x)) must equal
    # exactly " ".join(NFKC(x).split()). On Multi30k train that differs from x in only 130 of 58,000 lines
    # (double or edge spaces, U+00A0 no-break spaces in German): all others round-trip byte for byte.
    def nmt_nfkc(x: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", x).split())

    changed = 0
    for lines in multi30k_train.values():
        decoded = tokenizer.decode(tokenizer.encode(lines))
        mismatches = [(x, y) for x, y in zip(lines, decoded, strict=True) if y != nmt_nfkc(x)]
        assert mismatches == [], mismatches[:3]
        changed += sum(y != x for x, y in zip(lines, decoded, strict=True))
    assert changed == 130
    assert tokenizer.vocab_size == 8000


def test_encode_adds_no_specials_and_decode_skips_them(tokenizer):
    ids = tokenizer.encode(["A dog runs.", ""])
    assert ids[1] == [] and not {PAD_ID, BOS_ID, EOS_ID} & set(ids[0])
    noisy = [BOS_ID, *ids[0], EOS_ID, PAD_ID, PAD_ID]
    after_eos = [*ids[0], EOS_ID, *tokenizer.encode(["garbage"])[0]]
    assert tokenizer.decode([noisy, after_eos, [PAD_ID], []]) == ["A dog runs.", "A dog runs.", "", ""]


def test_fixed_special_ids_are_checked_at_load(tmp_path):
    lines = ["a small corpus", "with a few lines", "of plain text"] * 20
    buf = io.BytesIO()  # sentencepiece's own defaults: unk 0, bos 1, eos 2, no pad
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, vocab_size=30, hard_vocab_limit=False, minloglevel=2
    )
    (tmp_path / "other.model").write_bytes(buf.getvalue())
    with pytest.raises(
        TokenizerError, match=r"special ids pad=-1 unk=0 bos=1 eos=2.*pad=0 unk=1 bos=2 eos=3"
    ):
        Tokenizer.load(tmp_path / "other.model")
    with pytest.raises(TokenizerError, match="special ids"):
        Tokenizer.from_bytes(buf.getvalue())

    ok = Tokenizer.train(
        lines, tmp_path / "ok.model", **{**SETTINGS, "vocab_size": 30, "hard_vocab_limit": False}
    )
    sp = spm.SentencePieceProcessor(model_file=str(ok.path))
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)


def test_unreadable_model_and_failed_training_are_one_line_errors(tmp_path):
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="not a sentencepiece model") as e:
        Tokenizer.load(tmp_path / "junk.model")
    assert "\n" not in str(e.value)
    with pytest.raises(TokenizerError, match="cannot read"):
        Tokenizer.load(tmp_path / "absent.model")
    with pytest.raises(TokenizerError, match="hard_vocab_limit=false") as e:
        Tokenizer.train(["tiny corpus"] * 5, tmp_path / "t.model", **SETTINGS)  # vocab 8000 is too high
    assert "\n" not in str(e.value) and not (tmp_path / "t.model").exists()


def test_sha256_bytes_pickle_and_from_bytes_cache(tokenizer, tmp_path):
    data = tokenizer.path.read_bytes()
    assert tokenizer.sha256 == hashlib.sha256(data).hexdigest() and tokenizer.model_bytes == data
    again = Tokenizer.from_bytes(tokenizer.model_bytes)
    assert again.path is None and again.sha256 == tokenizer.sha256
    stored = Tokenizer.from_bytes(tokenizer.model_bytes, cache_dir=tmp_path)
    assert stored.path.read_bytes() == data and stored.path.is_relative_to(tmp_path)
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.encode(["Two dogs play."]) == tokenizer.encode(["Two dogs play."])


def test_load_or_train_reuses_the_cached_model(tmp_path, monkeypatch):
    lines = [f"line number {i} of a small test corpus" for i in range(50)]
    settings = {**SETTINGS, "vocab_size": 60, "hard_vocab_limit": False}
    first = load_or_train(tmp_path / "k", lambda: iter(lines), settings, about={"test": 1})
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == [
        "info.json",
        MODEL_FILE,
    ]  # no temp files left

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizer must be reused")

    monkeypatch.setattr(Tokenizer, "train", no_training)
    second = load_or_train(tmp_path / "k", lambda: iter(lines), settings, about={"test": 1})
    assert second.sha256 == first.sha256


# -- reuse of an existing model (data.tokenizer.path, or a Tokenizer given to the data module) -----------------
def test_reused_tokenizer_gives_the_original_ids_on_another_slice(
    compose_cfg, shared_data_dir, multi30k_train, tmp_path, monkeypatch
):
    from omegaconf import OmegaConf

    from mt.batch import EOS_ID
    from mt.data import TranslationDataModule

    small = ["data.tokenizer.vocab_size=500", "data.tokenizer.hard_vocab_limit=false"]
    first = compose_cfg(f"paths.data_dir={shared_data_dir}", f"paths.cache_dir={tmp_path / 'a'}",
                        "data.limit=2000", *small)
    original = TranslationDataModule(first.data, first.paths).tokenizer  # trained on lines 0..1999
    other = tmp_path / "slice"  # lines 2000..2599 of Multi30k train, validation and test from the original
    other.mkdir()
    for lang in ("en", "de"):
        lines = multi30k_train[lang][2000:2600]
        for split in ("train", "valid", "test"):
            (other / f"{split}.{lang}").write_text("\n".join(lines[:200] if split != "train" else lines) + "\n")

    def never(*args, **kwargs):
        raise AssertionError("an existing tokenizer must not be retrained")

    monkeypatch.setattr(Tokenizer, "train", never)
    args = ["data=text", f"data.dir={other}", "data.src=en", "data.tgt=de", *small]
    by_path = compose_cfg(*args, f"paths.cache_dir={tmp_path / 'b'}", f"data.tokenizer.path={original.path}")
    given = compose_cfg(*args, f"paths.cache_dir={tmp_path / 'c'}")
    paths_c = OmegaConf.create({"cache_dir": str(tmp_path / "c")})
    for dm in (
        TranslationDataModule(by_path.data, by_path.paths),
        TranslationDataModule(given.data, paths_c, tokenizer=Tokenizer.from_bytes(original.model_bytes)),
    ):
        assert dm.tokenizer.sha256 == original.sha256 and dm.tokenizer.path is not None
        rows = dm.data.splits["train"].select_columns(["src_text", "tgt_text", "src", "tgt"])[:]
        assert len(rows["src"]) > 590
        assert rows["src"] == [[*ids, EOS_ID] for ids in original.encode(rows["src_text"])]
        assert rows["tgt"] == original.encode(rows["tgt_text"])
        assert dm.sources("validation") == multi30k_train["en"][2000:2200]
    monkeypatch.undo()
    retrained = TranslationDataModule(given.data, OmegaConf.create({"cache_dir": str(tmp_path / "d")})).tokenizer
    assert retrained.sha256 != original.sha256  # without reuse this slice gets a model of its own


# -- the bounded training sample ---------------------------------------------------------------------------
def test_sample_is_exact_uniform_reproducible_and_in_stream_order():
    from mt.data.sample import reservoir

    def batches(n: int, size: int) -> list[list[str]]:
        items = [f"s{i}" for i in range(n)]
        return [items[i : i + size] for i in range(0, n, size)]

    assert list(reservoir(batches(5, 2), 10)) == ["s0", "s1", "s2", "s3", "s4"]  # fewer than the size: all
    picked = list(reservoir(batches(1000, 7), 10))
    assert len(set(picked)) == 10 and picked == sorted(picked, key=lambda s: int(s[1:]))
    assert picked == list(reservoir(batches(1000, 13), 10))  # the same whatever the record batch size
    counts = [0] * 100
    for seed in range(2000):
        for s in reservoir(batches(100, 9), 10, seed=seed):
            counts[int(s[1:])] += 1
    assert min(counts) > 150 and max(counts) < 250  # each of 100 items picked ~200 times in 2000 draws of 10


def test_sampled_tokenizer_is_the_same_in_every_process(tmp_path):
    """sentencepiece's own sampling gave a different model in each of three processes (0.2.3, measured)."""
    import subprocess
    import sys

    from mt.data.arrowfiles import batched_rows, write_batches

    words = "dog cat man woman child ball park street water red blue green runs jumps sits plays".split()
    rows = ({"id": i, "src": f"{words[i % 16]} {words[(7 * i) % 16]}{i % 97} {words[(3 * i) % 16]}",
             "tgt": f"{words[(5 * i) % 16]}{i % 89} {words[(11 * i) % 16]}", "ctrl": 0} for i in range(4000))
    raw = tmp_path / "train.arrow"
    write_batches(batched_rows(rows, 500), raw)
    script = (
        "import sys; from mt.data.encode import training_sentences; from mt.tokenizer import Tokenizer\n"
        f"s = training_sentences({str(raw)!r}, 'xx', 'yy', 1500)\n"
        "t = Tokenizer.train(s, sys.argv[1], model_type='unigram', vocab_size=120, character_coverage=1.0,\n"
        "                    hard_vocab_limit=False, input_sentence_size=1500, num_threads=1)\n"
        "print(t.sha256)\n"
    )
    shas = [
        subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{i}.model")], capture_output=True, text=True,
                       check=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip()
        for i in range(2)
    ]
    assert len(shas[0]) == 64 and shas[0] == shas[1]
