"""Corpus sources and bad input: text/multi30k files, Hugging Face JSON, download, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from mt.data import DataConfig, DataError, TranslationDataModule, prepare
from mt.data import download as download_mod
from mt.data.download import ensure_files, file_url
from tests.corpora import WORDS, sentences, text_corpus, write

TINY_TOKENIZER = ["data.tokenizer.vocab_size=100", "data.tokenizer.hard_vocab_limit=false"]
def text_cfg(compose_cfg, folder: Path, cache: Path, *extra: str):
    return compose_cfg(
        "data=text",
        f"data.dir={folder}",
        "data.src=xx",
        "data.tgt=yy",
        f"paths.cache_dir={cache}",
        *TINY_TOKENIZER,
        *extra,
    )


def prepare_cfg(cfg):
    return prepare(DataConfig.from_omegaconf(cfg.data), Path(cfg.paths.cache_dir))


def data_error(cfg) -> str:
    with pytest.raises(DataError) as e:
        prepare_cfg(cfg)
    message = str(e.value)
    assert "\n" not in message
    return message


# -- text files: reading rules ------------------------------------------------------------------------------
def test_text_source_plain_and_gz(compose_cfg, tmp_path):
    for gz in (False, True):
        folder = text_corpus(tmp_path / f"c{gz}", gz=gz)
        data = prepare_cfg(text_cfg(compose_cfg, folder, tmp_path / "cache"))
        assert {k: s.sentences for k, s in data.stats.items()} == {"train": 40, "validation": 8, "test": 6}
        assert list(data.splits["validation"]["tgt_text"])[:2] == sentences(2, "yy")


def test_crlf_control_chars_and_empty_lines(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    src, tgt = sentences(40, "xx"), sentences(40, "yy")
    src[3], tgt[5], tgt[7] = "xx bell\x07 and\x0bvt", "   ", ""  # control chars; whitespace-only; empty
    write(folder / "train.xx", src, eol="\r\n")
    write(folder / "train.yy", tgt)
    vsrc, vtgt = sentences(8, "xx"), sentences(8, "yy")
    vsrc[2], vtgt[4] = "", "yy tab\tkept\x85nel"
    write(folder / "valid.xx", vsrc, eol="\r\n")
    write(folder / "valid.yy", vtgt)
    dm = TranslationDataModule(
        text_cfg(compose_cfg, folder, tmp_path / "cache").data, _paths(tmp_path / "cache")
    )
    stats = dm.stats()["splits"]
    assert stats["train"]["dropped"]["empty"] == 2 and stats["train"]["kept"] == 38  # dropped, counted
    assert stats["train"]["control_chars"] == 2
    train_ids = list(dm.data.splits["train"]["id"])
    assert 5 not in train_ids and 7 not in train_ids and 3 in train_ids
    # validation: nothing dropped or shifted; CR removed; control chars (not tab) replaced by spaces
    assert stats["validation"] == {**stats["validation"], "sentences": 8, "kept": 8, "empty_kept": 1}
    assert dm.sources("validation") == [*vsrc[:2], "", *vsrc[3:]]
    assert dm.references("validation")[4] == "yy tab\tkept nel"
    ids = sorted(i for batch in dm.val_dataloader() for i in batch.ids.tolist())
    assert ids == list(range(8))  # the empty source still has its output slot
    assert dm.data.splits["train"].filter(lambda r: r["id"] == 3)[0]["src_text"] == "xx bell  and vt"


def test_length_and_ratio_filters_are_counted(compose_cfg, tmp_path, caplog):
    folder = text_corpus(tmp_path / "c")
    src, tgt = sentences(40, "xx"), sentences(40, "yy")
    src[0] = " ".join(["xx"] + WORDS * 80)  # >= 1280 subwords: longer than max_len=1000
    tgt[1] = " ".join(["yy"] + WORDS * 5)  # 80..560 subwords against a source of at most 13: ratio > 3
    write(folder / "train.xx", src)
    write(folder / "train.yy", tgt)
    with caplog.at_level("INFO", logger="mt.data.preparation"):
        data = prepare_cfg(text_cfg(compose_cfg, folder, tmp_path / "cache", "data.max_len=1000"))
    assert data.stats["train"].dropped == {"empty": 0, "too_long": 1, "ratio": 1}
    assert "dropped" in caplog.text
    # ... but validation keeps long sentences
    long_valid = sentences(8, "xx")
    long_valid[0] = src[0]
    write(folder / "valid.xx", long_valid)
    data = prepare_cfg(text_cfg(compose_cfg, folder, tmp_path / "cache", "data.max_len=1000"))
    assert data.stats["validation"].kept == 8 and list(data.splits["validation"]["n_src"])[0] > 1000


def test_limit_keeps_the_first_n_of_each_split(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    data = prepare_cfg(text_cfg(compose_cfg, folder, tmp_path / "cache", "data.limit=5"))
    assert {k: s.sentences for k, s in data.stats.items()} == {"train": 5, "validation": 5, "test": 5}
    assert list(data.splits["test"]["src_text"]) == sentences(5, "xx")


# -- text files: bad input -----------------------------------------------------------------------------------
def test_missing_file(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    (folder / "valid.yy").unlink()
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache"))
    assert f"looked for {folder / 'valid.yy'}[.gz]" in msg and "data.dir" in msg and "MT_DATA_DIR" in msg
    assert "found there: valid.xx" in msg

    empty = tmp_path / "nodata"
    cfg = compose_cfg(f"paths.data_dir={empty}", f"paths.cache_dir={tmp_path / 'cache'}", "data.url=null")
    msg = data_error(cfg)
    assert str(empty / "multi30k" / "train.en") in msg and "paths.data_dir" in msg and "MT_DATA_DIR" in msg


def test_line_count_mismatch(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    write(folder / "train.yy", sentences(37, "yy"), gz=True)
    (folder / "train.yy").unlink()
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache"))
    assert f"{folder / 'train.xx'} has 40 lines but {folder / 'train.yy.gz'} has 37" in msg


def test_invalid_utf8_names_file_and_line(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    lines = [s.encode() for s in sentences(8, "yy")]
    lines[4] = b"caf\xe9 latin-1"
    write(folder / "valid.yy", b"\n".join(lines) + b"\n")
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache"))
    assert f"{folder / 'valid.yy'}: invalid UTF-8 at line 5" in msg and "iconv" in msg


def test_empty_file(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c")
    write(folder / "test.xx", b"", gz=True)
    (folder / "test.xx").unlink()
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache"))
    assert f"{folder / 'test.xx.gz'}: file is empty" in msg


def test_truncated_gzip(compose_cfg, tmp_path):
    folder = text_corpus(tmp_path / "c", n=400, gz=True)
    path = folder / "train.yy.gz"
    path.write_bytes(path.read_bytes()[:-200])
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache"))
    assert f"{path}: truncated or corrupt gzip" in msg


def test_unknown_language_lists_the_available_ones(compose_cfg, shared_data_dir, tmp_path):
    cfg = compose_cfg(f"paths.data_dir={shared_data_dir}", f"paths.cache_dir={tmp_path}", "data.tgt=xx")
    assert "unknown language 'xx' (data.tgt) for multi30k; available: en, de, fr, cs" in data_error(cfg)
    assert "both 'en'" in data_error(compose_cfg(f"paths.cache_dir={tmp_path}", "data.tgt=en"))


def test_unset_mandatory_key_is_one_line(compose_cfg, tmp_path):
    assert "data.dir is not set" in data_error(compose_cfg("data=text", f"paths.cache_dir={tmp_path}"))


# -- Multi30k: real files, pairs, several test sets ---------------------------------------------------------
def test_reversed_pair_and_shared_tokenizer(compose_cfg, shared_data_dir, tmp_path):
    common = [
        f"paths.data_dir={shared_data_dir}",
        f"paths.cache_dir={tmp_path}",
        "data.limit=300",
        *TINY_TOKENIZER,
    ]
    en_de = TranslationDataModule(compose_cfg(*common).data, _paths(tmp_path))
    de_en = TranslationDataModule(compose_cfg(*common, "data.src=de", "data.tgt=en").data, _paths(tmp_path))
    assert de_en.sources("validation") == en_de.references("validation")
    assert de_en.references("test_2016_flickr") == en_de.sources("test_2016_flickr")
    assert de_en.sources("validation")[0].startswith("Eine Gruppe von Männern")
    assert de_en.tokenizer.sha256 == en_de.tokenizer.sha256  # joint model, trained once for both directions
    train = de_en.data.splits["train"][0]
    assert train["src"][-1] == 3 and de_en.tokenizer.decode([train["src"]])[0] == " ".join(
        train["src_text"].split()
    )


@pytest.mark.parametrize("lang", ["fr", "cs"])
def test_other_multi30k_languages(compose_cfg, shared_data_dir, tmp_path, lang):
    cfg = compose_cfg(
        f"paths.data_dir={shared_data_dir}",
        f"paths.cache_dir={tmp_path}",
        f"data.tgt={lang}",
        "data.limit=50",
        *TINY_TOKENIZER,
    )
    assert prepare_cfg(cfg).stats["validation"].sentences == 50


def test_several_test_sets_keep_their_names(compose_cfg, shared_data_dir, tmp_path):
    cfg = compose_cfg(
        f"paths.data_dir={shared_data_dir}",
        f"paths.cache_dir={tmp_path}",
        "data.limit=60",
        "data.splits.test=[test_2016_flickr,val]",
        *TINY_TOKENIZER,
    )
    dm = TranslationDataModule(cfg.data, cfg.paths)
    assert dm.test_names == ["test_2016_flickr", "val"]
    loaders = dm.test_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert dm.references("val") == dm.references("validation")
    with pytest.raises(
        DataError, match="unknown evaluation split 'nope'; available: validation, test_2016_flickr, val"
    ):
        dm.references("nope")


# -- download -------------------------------------------------------------------------------------------------
def test_download_url_construction():
    base = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
    assert file_url(base, "train.de.gz") == f"{base}/train.de.gz"
    assert file_url(base + "/", "val.en.gz") == f"{base}/val.en.gz"


def test_download_is_not_called_when_files_exist(compose_cfg, shared_data_dir, tmp_path, monkeypatch):
    def fail(url, dest):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(download_mod, "download", fail)
    assert (
        ensure_files(shared_data_dir / "multi30k", ["train.en.gz", "val.de.gz"], "https://example.invalid")
        == []
    )
    cfg = compose_cfg(
        f"paths.data_dir={shared_data_dir}", f"paths.cache_dir={tmp_path}", "data.limit=20", *TINY_TOKENIZER
    )
    prepare_cfg(cfg)


def test_missing_multi30k_files_are_downloaded_from_data_url(
    compose_cfg, shared_data_dir, tmp_path, monkeypatch
):
    calls = []
    real = download_mod.download
    monkeypatch.setattr(download_mod, "download", lambda url, dest: (calls.append(url), real(url, dest)))
    data_dir = tmp_path / "data"
    cfg = compose_cfg(
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        f"data.url=file://{shared_data_dir / 'multi30k'}",
        "data.limit=20",
        *TINY_TOKENIZER,
    )
    data = prepare_cfg(cfg)  # file:// runs the real urllib download path offline
    assert data.stats["train"].sentences == 20
    names = [f"{s}.{lang}.gz" for s in ("train", "val", "test_2016_flickr") for lang in ("en", "de")]
    assert sorted(calls) == sorted(f"file://{shared_data_dir / 'multi30k'}/{n}" for n in names)
    assert sorted(p.name for p in (data_dir / "multi30k").iterdir()) == sorted(names)  # no temp files left


def test_truncated_download_never_lands(tmp_path):
    src = tmp_path / "remote"
    write(src / "train.de", sentences(500, "de"), gz=True)
    (src / "train.de.gz").write_bytes((src / "train.de.gz").read_bytes()[:-100])
    with pytest.raises(DataError, match="could not download file://.*train.de.gz") as e:
        ensure_files(tmp_path / "local", ["train.de.gz"], f"file://{src}")
    assert "MT_DATA_DIR" in str(e.value) and list((tmp_path / "local").iterdir()) == []
    with pytest.raises(DataError, match="could not download"):
        ensure_files(tmp_path / "local", ["absent.gz"], f"file://{src}")


# -- Hugging Face source ------------------------------------------------------------------------------------
def hf_json(folder: Path, sizes=(("train", 40), ("validation", 7), ("test", 5))) -> Path:
    """A folder of {split}.jsonl files in translation format."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in sizes:
        pairs = zip(sentences(n, "de"), sentences(n, "en"), strict=True)
        rows = [{"translation": {"de": d, "en": e}} for d, e in pairs]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.mark.parametrize("form", ["folder", "pattern"])
def test_hf_json_source(compose_cfg, tmp_path, form):
    folder = hf_json(tmp_path / "j")
    path = str(folder) if form == "folder" else f"'{folder}/{{split}}.jsonl'"  # quoted for Hydra's grammar
    cfg = compose_cfg(
        "data=hf", f"data.path={path}", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_TOKENIZER
    )
    dm = TranslationDataModule(cfg.data, cfg.paths)
    assert (dm.cfg.src, dm.cfg.tgt) == ("de", "en")
    assert {k: v["sentences"] for k, v in dm.stats()["splits"].items()} == {
        "train": 40,
        "validation": 7,
        "test": 5,
    }
    assert dm.sources("validation") == sentences(7, "de") and dm.references("test") == sentences(5, "en")
    assert (tmp_path / "cache" / "datasets").is_dir()  # datasets' own cache lives under paths.cache_dir
    batch = next(iter(dm.train_dataloader()))
    assert batch.tgt_in is not None and batch.src.shape[0] == batch.ids.shape[0]


def test_hf_save_to_disk_directory_and_limit(compose_cfg, tmp_path):
    rows = {
        "translation": [
            {"de": d, "en": e} for d, e in zip(sentences(30, "de"), sentences(30, "en"), strict=True)
        ]
    }
    ds = Dataset.from_dict(rows)
    DatasetDict({"train": ds, "validation": ds.select(range(6)), "test": ds.select(range(4))}).save_to_disk(
        tmp_path / "saved"
    )
    cfg = compose_cfg(
        "data=hf",
        f"data.path={tmp_path / 'saved'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.src=en",
        "data.tgt=de",
        "data.limit=5",
        *TINY_TOKENIZER,
    )
    data = prepare_cfg(cfg)
    assert {k: s.sentences for k, s in data.stats.items()} == {"train": 5, "validation": 5, "test": 4}
    assert list(data.splits["test"]["tgt_text"]) == sentences(4, "de")
    assert not list((tmp_path / "saved").glob("**/cache-*.arrow"))  # nothing written into the user's dataset


def test_hf_errors(compose_cfg, tmp_path):
    folder = hf_json(tmp_path / "j")
    base = ["data=hf", f"paths.cache_dir={tmp_path / 'cache'}", *TINY_TOKENIZER]
    msg = data_error(compose_cfg(*base, f"data.path={folder}", "data.src=fr"))
    assert "language 'fr' (data.src) is not in the dataset; available: de, en" in msg
    single = tmp_path / "j" / "train.jsonl"
    msg = data_error(compose_cfg(*base, f"data.path={single}"))
    assert "no split 'validation'" in msg and "available: train" in msg
    msg = data_error(compose_cfg(*base, f"data.path='{tmp_path}/nothing/{{split}}.jsonl'"))
    assert "missing file" in msg
    msg = data_error(compose_cfg(*base, "data.path=some-hub/dataset"))  # offline: fails fast, one line
    assert "could not load Hugging Face dataset 'some-hub/dataset'" in msg
    assert "data.path is not set" in data_error(compose_cfg("data=hf", f"paths.cache_dir={tmp_path}"))


def _paths(cache: Path):
    from omegaconf import OmegaConf

    return OmegaConf.create({"cache_dir": str(cache)})


# -- Hugging Face streaming -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["folder", "pattern"])
def test_hf_streaming_matches_the_downloaded_dataset(compose_cfg, tmp_path, form):
    folder = hf_json(tmp_path / "j")
    path = str(folder) if form == "folder" else f"'{folder}/{{split}}.jsonl'"
    base = ["data=hf", f"data.path={path}", *TINY_TOKENIZER]
    whole = prepare_cfg(compose_cfg(*base, f"paths.cache_dir={tmp_path / 'a'}"))
    cfg = compose_cfg(*base, f"paths.cache_dir={tmp_path / 'b'}", "data.streaming=true")
    streamed = prepare_cfg(cfg)
    assert streamed.tokenizer.sha256 == whole.tokenizer.sha256
    assert streamed.stats == whole.stats
    for split in ("train", "validation", "test"):
        cols = ["id", "src", "tgt", "src_text", "tgt_text"]
        assert streamed.splits[split].select_columns(cols)[:] == whole.splits[split].select_columns(cols)[:]
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "b" / "raw").glob("hf-*.arrow")) == [
        "test", "train", "validation"
    ]
    # the stream is read once: a second preparation reads neither it nor the raw rows again
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()}
    again = prepare_cfg(cfg)
    assert again.stats == streamed.stats
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "b").rglob("*") if p.is_file()} == before


def test_hf_streaming_limit_and_errors(compose_cfg, tmp_path):
    folder = hf_json(tmp_path / "j")
    base = ["data=hf", f"data.path={folder}", "data.streaming=true", f"paths.cache_dir={tmp_path / 'c'}",
            *TINY_TOKENIZER]
    data = prepare_cfg(compose_cfg(*base, "data.limit=6"))
    assert {k: s.sentences for k, s in data.stats.items()} == {"train": 6, "validation": 6, "test": 5}
    assert list(data.splits["validation"]["src_text"]) == sentences(6, "de")
    assert "language 'fr' (data.src) is not in the dataset" in data_error(compose_cfg(*base, "data.src=fr"))
    msg = data_error(compose_cfg(*base[:2], "data.streaming=true", "data.path=some-hub/dataset",
                                 f"paths.cache_dir={tmp_path / 'c'}"))
    assert "could not load Hugging Face dataset 'some-hub/dataset'" in msg  # offline: fails fast, one line
    text = text_corpus(tmp_path / "t")
    assert "data.streaming=true works with data=hf only" in data_error(
        text_cfg(compose_cfg, text, tmp_path / "c", "data.streaming=true")
    )


# -- data.tokenizer.path ------------------------------------------------------------------------------------
def test_tokenizer_path_errors_are_one_line(compose_cfg, tmp_path):
    import io

    import sentencepiece as spm

    folder = text_corpus(tmp_path / "c")
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache", f"data.tokenizer.path={tmp_path}/no.model"))
    assert f"data.tokenizer.path={tmp_path}/no.model: no such file" in msg
    (tmp_path / "junk.model").write_bytes(b"junk")
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache", f"data.tokenizer.path={tmp_path}/junk.model"))
    assert "data.tokenizer.path" in msg and "not a sentencepiece model" in msg
    buf = io.BytesIO()  # sentencepiece's default ids: unk 0, bos 1, eos 2, no pad
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences(40, "xx") + sentences(40, "yy")),
                                   model_writer=buf, vocab_size=40, hard_vocab_limit=False, minloglevel=2)
    (tmp_path / "other.model").write_bytes(buf.getvalue())
    msg = data_error(text_cfg(compose_cfg, folder, tmp_path / "cache",
                              f"data.tokenizer.path={tmp_path}/other.model"))
    assert "special ids pad=-1 unk=0 bos=1 eos=2, but the pipeline needs pad=0 unk=1 bos=2 eos=3" in msg
    assert not (tmp_path / "cache" / "tokenizer").exists()  # nothing was trained instead
