"""sacreBLEU wrapper: language-aware BLEU tokenization, the override, signatures, and one-line errors."""

from __future__ import annotations

import importlib.util

import pytest

from mt.errors import ConfigError
from mt.metrics import bleu_metric, corpus_score, metric_signatures, sacrebleu_lang

# A tiny synthetic Chinese test set: each hypothesis differs from its reference in one or two characters.
# Chinese is written without spaces, so 13a sees each sentence as one "word" and no n-gram matches at all.
ZH_REFS = ["我喜欢吃苹果和香蕉。", "今天的天气非常好。", "他在图书馆里看书。", "我们明天去北京旅行。"]
ZH_HYPS = ["我喜欢吃苹果和橘子。", "今天的天气很好。", "他在图书馆看书。", "我们明天去上海旅行。"]


def test_chinese_target_is_scored_with_the_zh_tokenizer():
    zh = corpus_score(ZH_HYPS, ZH_REFS, tgt_lang="zh")
    plain = corpus_score(ZH_HYPS, ZH_REFS, tgt_lang="zh", tokenize="13a")
    assert "tok:zh" in zh.bleu_signature and "tok:13a" in plain.bleu_signature
    assert plain.bleu < 1.0  # what every Chinese target got before: near 0 for near-perfect output
    assert 40.0 < zh.bleu < 80.0  # sensible: most characters and many n-grams match
    assert corpus_score(ZH_REFS, ZH_REFS, tgt_lang="zh").bleu == pytest.approx(100.0)
    assert zh.chrf == plain.chrf  # chrF does not tokenize


@pytest.mark.parametrize("code, expected", [("zh", "zh"), ("zh-Hans", "zh"), ("zh_CN", "zh"), ("ZH", "zh"),
                                            ("de", "de"), ("pt-BR", "pt")])
def test_language_subtags_select_by_the_primary_language(code, expected):
    assert sacrebleu_lang(code) == expected
    assert bleu_metric(code).tokenizer_signature == ("zh" if expected == "zh" else "13a")


def test_other_languages_keep_13a_and_the_override_wins():
    hyps, refs = ["Ein Hund läuft im Park ."], ["Ein Hund rennt im Park ."]
    assert "tok:13a" in corpus_score(hyps, refs, tgt_lang="de").bleu_signature
    assert "tok:char" in corpus_score(hyps, refs, tgt_lang="de", tokenize="char").bleu_signature
    assert "tok:none" in corpus_score(ZH_HYPS, ZH_REFS, tgt_lang="zh", tokenize="none").bleu_signature


def test_signatures_without_a_corpus_follow_the_language():
    assert "tok:zh" in metric_signatures(tgt_lang="zh").bleu
    assert "tok:13a" in metric_signatures(tgt_lang="en").bleu
    assert "tok:intl" in metric_signatures(tgt_lang="zh", tokenize="intl").bleu


@pytest.mark.skipif(importlib.util.find_spec("MeCab") is not None, reason="sacrebleu[ja] is installed here")
def test_japanese_without_mecab_is_one_line_naming_the_extra():
    with pytest.raises(ConfigError) as e:
        corpus_score(["猫が好きです"], ["猫が好きです"], tgt_lang="ja")
    message = str(e.value)
    assert "\n" not in message
    assert "'ja-mecab'" in message and "sacrebleu[ja]" in message and "decode.bleu_tokenize" in message
    assert "tok:char" in corpus_score(["猫が好きです"], ["猫が好きです"], tgt_lang="ja", tokenize="char").bleu_signature


def test_unknown_tokenizer_is_one_line_naming_the_key():
    with pytest.raises(ConfigError, match=r"decode.bleu_tokenize='12a' is not a sacreBLEU tokenizer; "
                                          r"use one of none, zh, 13a") as e:
        bleu_metric("de", "12a")
    assert "\n" not in str(e.value)


def test_hypothesis_count_must_match_every_reference_stream():
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        corpus_score(["a", "b"], ["a"], tgt_lang="en")
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        corpus_score(["a"], [["a"], ["a", "b"]], tgt_lang="en")
