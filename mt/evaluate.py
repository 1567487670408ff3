"""evaluate(cfg): translate a split or raw text with a checkpoint or an exported model and score with sacreBLEU.

Also: n-best output (``decode.n_best``), interactive translation of stdin (``input=- output=-``), and paired
significance against a second system (``compare_with=``, a model translated here, or ``compare_hyps=``, another
system's translations of the same sentences, e.g. a JoeyNMT or fairseq output; :func:`paired_significance`).
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from sacrebleu.metrics import CHRF
from sacrebleu.significance import PairedTest

from mt.align import align_texts, format_alignment
from mt.checkpoint import check_weights, load_checkpoint
from mt.config import CONF_DIR
from mt.config_check import check_config
from mt.data.config import DataConfig
from mt.device import resolve_device
from mt.errors import MTError, require_values
from mt.metrics import Score, bleu_metric, corpus_score
from mt.simul.evaluate import SimulResult, format_latency, translate_simul
from mt.textio import InputError, atomic_write_text, read_lines, write_lines
from mt.translate import (
    ScoredTranslation,
    Translator,
    TranslatorBase,
    decode_settings,
    model_from_checkpoint,
    resolve_checkpoint,
    source_limit,
)

log = logging.getLogger(__name__)


@dataclass
class System:
    """A model ready to translate, with what evaluation needs to know about it."""

    name: str  # what it was loaded from: a checkpoint file or an export folder
    translator: TranslatorBase
    data: dict[str, Any]  # the data config it was trained with (test sets, languages)
    weights: str = "checkpoint"  # which of a checkpoint's weights (mt.checkpoint.select_weights)
    option = "compare_with"  # the evaluate.py key that names it as the second system

    @property
    def decode(self) -> dict[str, Any]:
        """The decode settings it translates with: the model's own (as trained or exported), then the overrides."""
        return dict(self.translator.decode_cfg)

    def hypotheses(self, sources: list[str]) -> list[str]:
        """Its translations of ``sources``."""
        return translate_lines(self.translator, sources, 1)[0]


@dataclass
class Hypotheses:
    """Another system's translations of the evaluated sentences (``compare_hyps=FILE``), one line per sentence."""

    name: str  # the file
    lines: list[str]
    option = "compare_hyps"

    def check(self, n: int, what: str) -> None:
        """Fail before any translation when the file does not hold one line per sentence of ``what``."""
        if len(self.lines) != n:
            raise InputError(f"compare_hyps={self.name} has {len(self.lines)} lines but {what} has {n} sentences; "
                             "give the other system's translations of exactly these sentences, one per line, in order")

    def hypotheses(self, sources: list[str]) -> list[str]:
        """The file's lines (their count was checked with :meth:`check` before anything was translated)."""
        return self.lines


def evaluate(cfg: DictConfig, decode_keys: Collection[str] | None = None) -> dict[str, Score]:
    """Translate ``cfg.input`` (raw text) or the model's ``cfg.split``; returns scores by set name.

    :param decode_keys: the ``cfg.decode`` settings that override the model's own decode settings (the ones it
        was trained or exported with): those named on the command line (:func:`decode_override_keys`); None =
        all of ``cfg.decode``.
    """
    require_values(cfg)
    keys = list(cfg.decode) if decode_keys is None else list(decode_keys)
    overrides = {k: v for k, v in OmegaConf.to_container(cfg.decode, resolve=True).items() if k in keys}
    given = cfg.copy()
    with open_dict(given):
        given.decode = overrides  # the decode values given here; the model's own complete them when it is loaded
    check_config(given)
    if cfg.output not in (None, "-"):
        _check_writable(Path(cfg.output))
    if cfg.compare_with and cfg.compare_hyps:
        raise MTError("give compare_with= (a model, translated here) or compare_hyps= (its translations), not both")
    other: System | Hypotheses | None = (Hypotheses(str(cfg.compare_hyps), read_lines(str(cfg.compare_hyps)))
                                         if cfg.compare_hyps else None)
    system = load_system(cfg, cfg.ckpt, cfg.model_dir, overrides)
    if cfg.compare_with:
        other = load_system(cfg, str(cfg.compare_with), None, overrides, compare=True)
    if isinstance(other, System) and (other.data.get("src"), other.data.get("tgt")) != (system.data.get("src"),
                                                                             system.data.get("tgt")):
        raise MTError(f"compare_with={cfg.compare_with} translates {other.data.get('src')}-{other.data.get('tgt')}, "
                      f"the model {system.data.get('src')}-{system.data.get('tgt')}; compare systems of one pair")
    out_dir = Path(cfg.paths.output_dir)
    if cfg.input is not None:
        return _translate_text(cfg, system, other, out_dir)
    return _translate_splits(cfg, system, other, out_dir)


def decode_override_keys(overrides: list[str]) -> set[str]:
    """The decode settings that command-line overrides set: ``decode.KEY=V`` (also with ``+``/``++``) and the keys
    a ``decode=NAME`` group file (conf/decode/NAME.yaml) sets itself, e.g. ``beam_size`` for ``decode=greedy``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys: set[str] = set()
    for override in OverridesParser.create().parse_overrides(overrides):
        name = override.key_or_group
        if override.is_delete():
            continue
        if name == "decode":
            group = OmegaConf.load(CONF_DIR / "decode" / f"{override.value()}.yaml")
            keys |= {str(k) for k in group if k != "defaults"}
        elif name.startswith("decode."):
            keys.add(name.split(".")[1])
    return keys


def load_system(cfg: DictConfig, ckpt: str | None, model_dir: str | None, decode: dict[str, Any],
                compare: bool = False) -> System:
    """The model that ``ckpt=`` (file, run folder, best/last of ``run=``) or ``model_dir=`` (export) names, with
    its own decode settings overridden by ``decode``."""
    from mt.export.load import export_format, load_exported

    device = resolve_device(str(cfg.device))
    key = "compare_weights" if compare else "weights"
    weights = str(cfg[key])
    check_weights(weights, key)
    if not compare:
        if ckpt is None and model_dir is None and cfg.run is None:
            raise MTError("missing required value(s): ckpt; set ckpt=PATH (a .ckpt file or a training run folder), "
                          "ckpt=best run=RUN_DIR, or model_dir=DIR (a model exported with python -m mt.export)")
        if model_dir is not None and ckpt is not None:
            raise MTError("give either ckpt= or model_dir=, not both")
    elif Path(str(ckpt)).is_dir() and export_format(Path(str(ckpt))) is not None:
        model_dir, ckpt = str(ckpt), None
    if model_dir is not None:
        if weights != "checkpoint":
            raise MTError(f"{key}={weights} picks weights of a training checkpoint, but {model_dir} is an exported "
                          f"model with one set of weights; give a .ckpt (or run folder) or drop {key}=")
        exported = load_exported(model_dir, decode, "auto" if compare else cfg.engine, device,
                                 str(cfg.precision), int(cfg.threads))
        return System(str(model_dir), exported.translator, exported.config["data"])
    if cfg.engine == "ctranslate2" and not compare:
        raise MTError("engine=ctranslate2 runs an exported CTranslate2 model: python -m mt.export ckpt=... "
                      "format=ctranslate2 out=DIR, then evaluate.py model_dir=DIR")
    path = resolve_checkpoint(str(ckpt if ckpt is not None else cfg.run), cfg.run)
    data = load_checkpoint(path)
    model, tokenizer = model_from_checkpoint(data, str(path), weights=weights)
    settings = decode_settings(data["hyper_parameters"].get("decode", {}), decode)
    translator = Translator(model, tokenizer, settings, device=device, precision=str(cfg.precision))
    return System(str(path), translator, data["hyper_parameters"]["data"], weights)


def _check_writable(path: Path) -> None:
    """Fail now, not after translating everything, when ``output=`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"output={path}: cannot create its folder ({e.strerror}); choose another output file "
                         "or -") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        why = "it is a folder" if path.is_dir() else "its folder is not writable"
        raise InputError(f"output={path} cannot be written ({why}); choose another output file or -")


def _references(cfg: DictConfig, n: int, what: str) -> list[list[str]] | None:
    """The ``references`` files, each checked to hold exactly ``n`` lines (one per sentence of ``what``)."""
    if cfg.references is None:
        return None
    paths = [cfg.references] if isinstance(cfg.references, str) else list(cfg.references)
    streams = [read_lines(p) for p in paths]
    for path, stream in zip(paths, streams, strict=True):
        if len(stream) != n:
            raise InputError(f"references {path} has {len(stream)} lines but {what} has {n}; give exactly one "
                             "reference line per source sentence, in the same order")
    return streams


# ------------------------------------------------------------------------------------------ translation + output
def translate_lines(translator: TranslatorBase, sources: list[str], n_best: int, first_index: int = 0
                    ) -> tuple[list[str], list[str]]:
    """Translate ``sources``: (the best translation of each, the output lines to write).

    n_best == 1: one line per source, the translation. n_best > 1: ``line_index<TAB>score<TAB>hypothesis``,
    n_best lines per source, best first; line_index counts input lines from 0 (``first_index`` for the first).
    """
    if n_best == 1:
        best = translator.translate(sources)
        return best, best
    scored: list[list[ScoredTranslation]] = translator.translate(sources, n_best=n_best)
    lines = [f"{first_index + i}\t{h.score:.4f}\t{h.text}" for i, hyps in enumerate(scored) for h in hyps]
    return [hyps[0].text for hyps in scored], lines


def stdin_chunks(max_bytes: int = 1 << 20) -> Iterator[list[str]]:
    """Lines of stdin as soon as they arrive: each chunk holds every complete line already available.

    A terminal or a pipe that stays open is thus translated line by line; a file piped in is read in large
    chunks that batch well. Invalid UTF-8 is a one-line error naming the line, as in :func:`read_lines`.
    """
    fd = sys.stdin.fileno()
    pending, lineno, eof = b"", 0, False
    while not eof:
        data = os.read(fd, 1 << 16)  # blocks until something arrives
        eof = not data
        pending += data
        while not eof and len(pending) < max_bytes and select.select([fd], [], [], 0)[0]:
            more = os.read(fd, 1 << 16)  # more is ready: take it without waiting
            eof = not more
            pending += more
        *complete, pending = pending.split(b"\n")
        if eof and pending:
            complete, pending = [*complete, pending], b""
        if complete:
            yield [_decode_line(raw, lineno + i + 1) for i, raw in enumerate(complete)]
            lineno += len(complete)


def _decode_line(raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("utf-8").removesuffix("\r")
    except UnicodeDecodeError as e:
        raise InputError(f"<stdin>, line {lineno}: invalid UTF-8 at byte {e.start} "
                         f"({raw[max(0, e.start - 10):e.start + 10]!r}); convert the input to UTF-8 "
                         "(e.g. iconv -f latin1 -t utf-8)") from None


def _translate_text(cfg: DictConfig, system: System, other: System | Hypotheses | None, out_dir: Path
                    ) -> dict[str, Score]:
    name = "stdin" if cfg.input == "-" else cfg.input
    output, n_best = cfg.output or "-", int(system.decode["n_best"])
    latency: dict[str, dict] = {}
    if cfg.input == "-" and output == "-" and other is None:  # interactive: translate and flush as lines arrive
        sources, hyps = [], []
        for chunk in stdin_chunks():
            best, lines = translate_lines(system.translator, chunk, n_best, len(sources))
            write_lines("-", lines)
            sources += chunk
            hyps += best
        refs = _references(cfg, len(sources), f"input {name}")
        _write_alignments(cfg, system, sources, hyps, out_dir / "alignments.input.txt")
    else:
        sources = read_lines(cfg.input)
        refs = _references(cfg, len(sources), f"input {name}")  # checked before the (long) translation
        if other is not None and refs is None:
            raise MTError("compare_with=/compare_hyps= need references: evaluate a split, or give references=FILE")
        if isinstance(other, Hypotheses):
            other.check(len(sources), f"input {name}")
        simul = _wait_k(cfg, system, sources, refs[0] if refs else None)
        hyps, lines = (simul.texts, simul.texts) if simul else translate_lines(system.translator, sources, n_best)
        write_lines(output, lines)
        _write_alignments(cfg, system, sources, hyps, out_dir / "alignments.input.txt")
        if simul:
            latency = {"input": simul.latency_dict()}
            print(format_latency(simul, int(system.decode["wait_k"])), file=sys.stderr if output == "-" else sys.stdout)
    log.info("translated %d lines from %s", len(sources), name)
    if refs is None:
        return {}
    if not sources:
        log.warning("the input is empty: nothing to score")
        return {}
    scores, significance = {"input": _score(cfg, system, hyps, refs)}, {}
    report = str(scores["input"])
    if other is not None:
        sig, text = _compare(cfg, system, hyps, refs, other, sources, out_dir / "hyps.input.B.txt")
        significance["input"], report = sig, f"{report}\n{text}"
    print(report, file=sys.stderr if output == "-" else sys.stdout)
    _write_metrics(out_dir, cfg, system, other, scores, significance, latency)
    return scores


def _translate_splits(cfg: DictConfig, system: System, other: System | Hypotheses | None, out_dir: Path
                      ) -> dict[str, Score]:
    from mt.data.corpus import eval_text

    merged = OmegaConf.merge({"paths": cfg.paths}, {"data": system.data}, {"data": cfg.data})
    data_cfg = DataConfig.from_omegaconf(merged.data)
    names = list(data_cfg.splits.test) if cfg.split == "test" else [cfg.split]
    for option in ("compare_hyps", "references", "output"):
        if len(names) > 1 and cfg[option] is not None:
            raise MTError(f"{option}= holds one set's lines but split={cfg.split} has {len(names)} sets "
                          f"({', '.join(names)}); choose one with split=NAME")
    report = sys.stderr if cfg.output == "-" else sys.stdout  # stdout carries the hypotheses with output=-
    scores: dict[str, Score] = {}
    significance: dict[str, PairedSignificance] = {}
    latency: dict[str, dict] = {}
    for name in names:
        text = eval_text(data_cfg, Path(cfg.paths.cache_dir), name)
        sources = text.sources
        refs = _references(cfg, len(sources), f"split {name}") or [text.references]
        if isinstance(other, Hypotheses):
            other.check(len(sources), f"split {name}")
        simul = _wait_k(cfg, system, sources, refs[0])
        hyps, lines = (simul.texts, simul.texts) if simul else translate_lines(system.translator, sources,
                                                                                int(system.decode["n_best"]))
        out = cfg.output or str(out_dir / f"hyps.{name}.txt")
        write_lines(out, lines)
        _write_alignments(cfg, system, sources, hyps, out_dir / f"alignments.{name}.txt")
        scores[name] = _score(cfg, system, hyps, refs)
        print(f"{name} ({len(hyps)} sentences, beam {system.decode['beam_size']}): hypotheses in {out}\n{scores[name]}",
              file=report)
        if simul:
            latency[name] = simul.latency_dict()
            print(format_latency(simul, int(system.decode["wait_k"])), file=report)
        if other is not None:
            significance[name], comparison = _compare(cfg, system, hyps, refs, other, sources,
                                                      out_dir / f"hyps.{name}.B.txt")
            print(comparison, file=report)
    _write_metrics(out_dir, cfg, system, other, scores, significance, latency)
    return scores


def _write_alignments(cfg: DictConfig, system: System, sources: list[str], hyps: list[str], path: Path) -> None:
    """decode.alignments=true: one line per sentence, ``i-j`` links (source subword i, target subword j)."""
    if not system.decode.get("alignments"):
        return
    if not isinstance(system.translator, Translator):
        raise MTError("decode.alignments=true needs this project's model (ckpt= or an hf export), not a CTranslate2 "
                      "export: its attention is not exposed")
    tr = system.translator
    matrices = align_texts(tr.model, tr.tokenizer, sources, hyps, source_limit(tr.model, tr.decode_cfg))
    write_lines(str(path), [format_alignment(m.hard_alignment()) for m in matrices])
    log.info("alignments of %d sentences in %s", len(matrices), path)


def _wait_k(cfg: DictConfig, system: System, sources: list[str], refs: list[str] | None) -> SimulResult | None:
    """With decode.policy=wait_k: the wait-k translations with their emission schedules and latency (AL, LAAL,
    DAL in source subwords and words); None for full-sentence decoding."""
    if system.decode.get("policy", "full") != "wait_k":
        return None
    if not isinstance(system.translator, Translator):
        raise MTError("decode.policy=wait_k needs this project's engine (ckpt=, or a format=hf export), not a "
                      "CTranslate2 export")
    return translate_simul(system.translator, sources, int(system.decode["wait_k"]), refs)


def _score(cfg: DictConfig, system: System, hyps: list[str], refs: list[list[str]]) -> Score:
    """BLEU (tokenized for the target language, or ``decode.bleu_tokenize``) and chrF of the best hypotheses."""
    return corpus_score(hyps, refs, tgt_lang=system.data["tgt"], tokenize=system.decode.get("bleu_tokenize"))


def _compare(cfg: DictConfig, system: System, hyps: list[str], refs: list[list[str]], other: System | Hypotheses,
             sources: list[str], other_out: Path) -> tuple[PairedSignificance, str]:
    """``other``'s translations of ``sources`` (a model's written to ``other_out``) against ours: the paired test."""
    other_hyps = other.hypotheses(sources)
    if isinstance(other, System):
        write_lines(str(other_out), other_hyps)
    else:
        other_out = Path(other.name)
    sig = paired_significance(hyps, other_hyps, refs, int(cfg.significance_samples), tgt_lang=system.data["tgt"],
                              tokenize=system.decode.get("bleu_tokenize"))
    return sig, (f"{other.option}={other.name} (B{_weights_note(other)}, hypotheses in {other_out}) vs this model "
                 f"(A{_weights_note(system)}):\n{sig}")


def _weights_note(system: System | Hypotheses) -> str:
    """", raw weights" for a system translated with a checkpoint's raw weights (weights=raw), else nothing."""
    return f", {system.weights} weights" if isinstance(system, System) and system.weights != "checkpoint" else ""


def _write_metrics(out_dir: Path, cfg: DictConfig, system: System, other: System | Hypotheses | None,
                   scores: dict[str, Score], significance: dict[str, PairedSignificance],
                   latency: dict[str, dict] | None = None) -> None:
    payload = {"ckpt": system.name, "weights": system.weights, "engine": cfg.engine,
               "decode": system.decode,
               "precision": str(cfg.precision), "scores": {k: s.as_dict() for k, s in scores.items()}}
    if other is not None:
        payload[other.option] = other.name
        if isinstance(other, System):
            payload["compare_weights"], payload["compare_decode"] = other.weights, other.decode
        payload["significance"] = {k: v.as_dict() for k, v in significance.items()}
    if latency:  # decode.policy=wait_k: AL/LAAL/DAL per set, in source subwords and words
        payload["latency"] = latency
    atomic_write_text(out_dir / "metrics.json", json.dumps(payload, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------- significance
@dataclass
class Estimate:
    """One system's score on the test set and its bootstrap estimate: mean ± ci is the 95% confidence interval."""

    score: float
    mean: float
    ci: float  # half-width of the 95% confidence interval


@dataclass
class MetricSignificance:
    """Paired bootstrap resampling (sacreBLEU) of one metric for systems A (baseline) and B."""

    metric: str  # sacreBLEU's name: BLEU, chrF2
    a: Estimate
    b: Estimate
    p_value: float  # how likely a difference at least this large arises by chance when the systems are equal;
    # (c + 1) / (n_samples + 1) as in sacreBLEU/MultEval, so identical systems get the minimum 1 / (n_samples + 1)
    signature: str  # sacreBLEU signature, with the bootstrap settings (bs:<samples>|seed:<seed>)


@dataclass
class PairedSignificance:
    """Result of :func:`paired_significance`, per metric."""

    n_sentences: int
    n_samples: int
    metrics: dict[str, MetricSignificance]

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return "\n".join(
            f"{m.metric}: A {m.a.score:.2f} ({m.a.mean:.2f} ± {m.a.ci:.2f})  B {m.b.score:.2f} ({m.b.mean:.2f} ± "
            f"{m.b.ci:.2f})  p = {m.p_value:.4f}  (paired bootstrap, {self.n_samples} resamples, 95% CI; "
            f"{m.signature})" for m in self.metrics.values())


def paired_significance(hyps_a: list[str], hyps_b: list[str], references: list[str] | list[list[str]],
                        n_samples: int = 1000, *, tgt_lang: str, tokenize: str | None = None) -> PairedSignificance:
    """Paired bootstrap resampling test (sacreBLEU's ``significance`` module, Koehn 2004) of BLEU and chrF for
    system B against baseline A on the same sentences; references: one stream (list[str]) or several. BLEU is
    tokenized as :func:`mt.metrics.corpus_score` does (by ``tgt_lang``, or ``tokenize``).

    Deterministic: sacreBLEU seeds its resampling (``SACREBLEU_SEED``, default 12345, in the signature).
    """
    streams = [references] if not references or isinstance(references[0], str) else references
    for what, n in (("hypotheses of B", len(hyps_b)), *((f"reference stream {i}", len(s))
                                                        for i, s in enumerate(streams))):
        if n != len(hyps_a):
            raise MTError(f"{len(hyps_a)} hypotheses of A but {n} {what}: both systems must translate the same "
                          "sentences, each once")
    if not hyps_a:
        raise MTError("no sentences to compare")
    test = PairedTest([("A", hyps_a), ("B", hyps_b)], {"BLEU": bleu_metric(tgt_lang, tokenize), "chrF": CHRF()}, streams,
                      test_type="bs", n_samples=n_samples)
    signatures, results = test()
    metrics = {}
    for name, (a, b) in ((k, v) for k, v in results.items() if k != "System"):
        metrics[name] = MetricSignificance(name, Estimate(a.score, float(a.mean), float(a.ci)),
                                           Estimate(b.score, float(b.mean), float(b.ci)), float(b.p_value),
                                           str(signatures[name]))
    return PairedSignificance(len(hyps_a), n_samples, metrics)
