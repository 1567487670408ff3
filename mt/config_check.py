"""Up-front validation of a composed config: what values the project's own keys allow, in one table.

The defaults stay in ``conf/``; this file only says which values are allowed. :func:`check_config` runs before
any data preparation (``hydra.callbacks.config_check`` in conf/train.yaml) and reports every bad value in one
line that names the key, the value and what is allowed. Keys a config does not have are skipped, so the same
function serves train.py, evaluate.py and the tools.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import math
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mt.errors import ConfigError
from mt.schedule import LRSchedule


# --------------------------------------------------------------------------------------------- value rules
class Rule:
    """What one key allows: :meth:`ok` tests a value, ``str(rule)`` says what is allowed."""

    def ok(self, value: Any) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Integer(Rule):
    """An integer (not a bool) in [low, high]."""

    low: int | None = None
    high: int | None = None

    def ok(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)
                and (self.low is None or value >= self.low) and (self.high is None or value <= self.high))

    def __str__(self) -> str:
        if self.high is None:
            return "an integer" + ("" if self.low is None else f" >= {self.low}")
        return f"an integer in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Number(Rule):
    """A finite int or float (not a bool) between low and high, each bound open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.high is None:
            bound = "" if self.low is None else f" {'>' if self.low_open else '>='} {self.low:g}"
            return "a number" + bound
        return (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


@dataclass(frozen=True)
class OneOf(Rule):
    """One of a fixed set of values (compared by type and value, so ``true`` is not ``1``)."""

    choices: tuple

    def ok(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices)

    def __str__(self) -> str:  # as written on the command line: true, not True; 32 once, not as int and str
        return "one of " + ", ".join(dict.fromkeys(str(c).lower() if isinstance(c, bool) else str(c)
                                                   for c in self.choices))


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string (a path, a name)."""

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value.strip() != ""

    def __str__(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class Nullable(Rule):
    """null, or what ``rule`` allows."""

    rule: Rule

    def ok(self, value: Any) -> bool:
        return value is None or self.rule.ok(value)

    def __str__(self) -> str:
        return f"null or {self.rule}"


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of exactly ``length`` items, each allowed by ``item``."""

    length: int
    item: Rule

    def ok(self, value: Any) -> bool:
        return isinstance(value, (list, tuple)) and len(value) == self.length \
            and all(self.item.ok(v) for v in value)

    def __str__(self) -> str:
        return f"a list of {self.length} items, each {self.item}"


@functools.cache
def lightning_precisions() -> tuple:
    """The ``precision`` values ``lightning.Trainer`` accepts, read from its public signature's annotation."""
    import lightning

    def literals(hint: Any) -> list:
        if typing.get_origin(hint) is typing.Literal:
            return list(typing.get_args(hint))
        return [v for arg in typing.get_args(hint) for v in literals(arg)]

    return tuple(dict.fromkeys(literals(typing.get_type_hints(lightning.Trainer.__init__)["precision"])))


def trainer_precisions() -> tuple:
    """``trainer.precision``: ``auto`` (resolved by :func:`mt.device.train_precision`) or a Lightning value."""
    return ("auto", *lightning_precisions())


@dataclass(frozen=True)
class LazyOneOf(Rule):
    """One of the values ``choices()`` returns, looked up only when a config has the key."""

    choices: Callable[[], tuple]

    def ok(self, value: Any) -> bool:
        return OneOf(self.choices()).ok(value)

    def __str__(self) -> str:
        return str(OneOf(self.choices()))


POSITIVE = Integer(1)
COUNT = Integer(0)
BOOL = OneOf((True, False))
PROBABILITY = Number(0.0, 1.0, high_open=True)

# key pattern (fnmatch over the dotted key) -> allowed values; the first matching pattern applies.
RULES: dict[str, Rule] = {
    "seed": Integer(0, 2**32 - 1),
    "test_after_fit": BOOL,
    "average_best": BOOL,
    "train.label_smoothing": PROBABILITY,
    "train.nonfinite": OneOf(("stop", "skip")),
    "train.log_samples": COUNT,
    "train.wait_k": Nullable(POSITIVE),
    "train.wait_k_multipath": BOOL,
    "train.loss_chunk": Nullable(POSITIVE),
    "decode.beam_size": POSITIVE,
    "decode.validation_beam_size": Nullable(POSITIVE),
    "decode.len_penalty": Number(0.0),
    "decode.max_len_a": Number(0.0),
    "decode.max_len_b": COUNT,
    "decode.min_len": COUNT,
    "decode.n_best": POSITIVE,
    "decode.max_tokens": POSITIVE,
    "decode.max_src_len": POSITIVE,
    "decode.policy": OneOf(("full", "wait_k")),
    "decode.alignments": BOOL,
    "decode.wait_k": POSITIVE,
    "optim.lr": Number(0.0, low_open=True),
    "optim.betas": ListOf(2, PROBABILITY),
    "optim.eps": Number(0.0, low_open=True),
    "optim.weight_decay": Number(0.0),
    "optim.schedule": OneOf(LRSchedule.KINDS),
    "optim.warmup_steps": COUNT,
    "optim.min_lr": Number(0.0),
    "optim.plateau_factor": Number(0.0, 1.0, low_open=True, high_open=True),
    "optim.plateau_patience": COUNT,
    "data.limit": Nullable(POSITIVE),
    "data.max_len": POSITIVE,
    "data.max_len_ratio": Number(1.0),  # max(S, T) / min(S, T) of a pair is never below 1
    "data.max_tokens": POSITIVE,
    "data.bucket_width": POSITIVE,
    "data.num_workers": COUNT,
    "data.num_proc": POSITIVE,
    "data.tokenizer.model_type": OneOf(("unigram", "bpe", "char", "word")),  # sentencepiece's model types
    "data.tokenizer.vocab_size": POSITIVE,
    "data.tokenizer.character_coverage": Number(0.0, 1.0, low_open=True),
    "data.tokenizer.hard_vocab_limit": BOOL,
    "data.tokenizer.input_sentence_size": COUNT,
    "data.tokenizer.num_threads": POSITIVE,
    "data.tokenizer.path": Nullable(Text()),
    "data.streaming": BOOL,
    "data.shard_size": POSITIVE,
    "model.*dropout": PROBABILITY,  # generic model keys, whatever the architecture
    "model.*_layers": POSITIVE,
    "model.*_dim": POSITIVE,
    "model.*_hidden": POSITIVE,
    "model.d_model": POSITIVE,
    "model.n_heads": POSITIVE,
    "model.max_positions": POSITIVE,
    "trainer.precision": LazyOneOf(trainer_precisions),
    "trainer.max_epochs": Nullable(Integer(-1)),
    "trainer.max_steps": Integer(-1),
    "trainer.accumulate_grad_batches": POSITIVE,
    "trainer.gradient_clip_val": Nullable(Number(0.0)),
    "callbacks.early_stopping.patience": COUNT,
    "callbacks.periodic_checkpoint.every_n_train_steps": COUNT,
    "callbacks.ema.decay": Number(0.0, 1.0, low_open=True, high_open=True),
    "callbacks.ema.window_fraction": Nullable(Number(0.0, 1.0, low_open=True)),
    "callbacks.ema.every_n_steps": POSITIVE,
    "significance_samples": POSITIVE,  # evaluate.py
    "engine": OneOf(("auto", "torch", "ctranslate2")),
    "threads": Nullable(COUNT),
    "runtime.tune_malloc": BOOL,
    "runtime.heap_only": BOOL,
    "runtime.byte_dropout": BOOL,
    "runtime.onednn_cache_capacity": Nullable(POSITIVE),
}


# ------------------------------------------------------------------------------------ rules across keys
def _budget_fits_a_sentence(v: dict[str, Any]) -> str | None:
    """A training pair of data.max_len subwords costs max_len + 1 padded positions (EOS / BOS shift),
    rounded up to the bucket width; a smaller budget puts every such pair alone in an over-budget batch."""
    need = -(-(v["data.max_len"] + 1) // v["data.bucket_width"]) * v["data.bucket_width"]
    if v["data.max_tokens"] < need:
        return (f"data.max_tokens={v['data.max_tokens']} is smaller than one sentence of data.max_len="
                f"{v['data.max_len']} subwords ({need} tokens with EOS); use data.max_tokens >= {need} "
                "or lower data.max_len")
    return None


def _decode_budget_fits_a_sentence(v: dict[str, Any]) -> str | None:
    need = v["decode.max_src_len"] + 1
    if v["decode.max_tokens"] < need:
        return (f"decode.max_tokens={v['decode.max_tokens']} is smaller than one source sentence of "
                f"decode.max_src_len={v['decode.max_src_len']} subwords ({need} with EOS); "
                f"use decode.max_tokens >= {need} or lower decode.max_src_len")
    return None


def _n_best_within_beam(v: dict[str, Any]) -> str | None:
    if v["decode.n_best"] > v["decode.beam_size"]:
        return (f"decode.n_best={v['decode.n_best']} is larger than "
                f"decode.beam_size={v['decode.beam_size']}; use decode.n_best <= decode.beam_size")
    return None


def _wait_k_one_best(v: dict[str, Any]) -> str | None:
    if v["decode.policy"] == "wait_k" and v["decode.n_best"] != 1:
        return f"decode.n_best={v['decode.n_best']}: wait-k decoding returns one hypothesis; use decode.n_best=1"
    return None


def _min_lr_below_lr(v: dict[str, Any]) -> str | None:
    if v["optim.min_lr"] > v["optim.lr"]:
        return (f"optim.min_lr={v['optim.min_lr']:g} is above optim.lr={v['optim.lr']:g}; use optim.min_lr "
                "<= optim.lr (the floor of the decayed rate)")
    return None


# (keys they read, check); a relation runs only when all its keys exist and passed their own rules
RELATIONS: list[tuple[tuple[str, ...], Callable[[dict[str, Any]], str | None]]] = [
    (("data.max_tokens", "data.max_len", "data.bucket_width"), _budget_fits_a_sentence),
    (("decode.max_tokens", "decode.max_src_len"), _decode_budget_fits_a_sentence),
    (("decode.n_best", "decode.beam_size"), _n_best_within_beam),
    (("optim.min_lr", "optim.lr"), _min_lr_below_lr),
    (("decode.policy", "decode.n_best"), _wait_k_one_best),
]

# logger class -> packages it needs (any one of them); Lightning itself only says so in a traceback
LOGGER_PACKAGES: dict[str, tuple[str, ...]] = {
    "WandbLogger": ("wandb",),
    "MLFlowLogger": ("mlflow",),
    "TensorBoardLogger": ("tensorboard", "tensorboardX"),
    "CometLogger": ("comet_ml",),
    "NeptuneLogger": ("neptune",),
}


# ------------------------------------------------------------------------------------------------ checks
def check_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` naming every invalid value of ``cfg`` (a composed train, evaluate or
    tool config): types and ranges (:data:`RULES`), relations between keys, installed logger packages and
    the BLEU tokenizer of the target language."""
    values, problems = {}, []
    for key, node in _leaves(cfg):
        rule = next((r for pattern, r in RULES.items() if fnmatch.fnmatchcase(key, pattern)), None)
        if rule is None or node._is_missing():  # ??? values: require_values names them
            continue
        try:
            value = OmegaConf.select(cfg, key)
        except Exception:  # an interpolation that cannot resolve here (e.g. ${hydra:...} outside a Hydra run)
            continue
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if rule.ok(value):
            values[key] = value
        else:
            problems.append(f"{key}={value!r} is invalid; use {rule}")
    for keys, relation in RELATIONS:
        if all(k in values for k in keys) and (problem := relation(values)):
            problems.append(problem)
    problems += logger_problems(cfg)
    if (problem := bleu_problem(cfg)) is not None:
        problems.append(problem)
    if problems:
        raise ConfigError("; ".join(problems))


def logger_problems(cfg: DictConfig) -> list[str]:
    """One message per configured logger whose package is not installed."""
    problems = []
    loggers = OmegaConf.select(cfg, "logger")
    for name, node in (loggers.items() if isinstance(loggers, DictConfig) else []):
        target = str(node.get("_target_", "")) if isinstance(node, DictConfig) else ""
        packages = LOGGER_PACKAGES.get(target.rsplit(".", 1)[-1], ())
        if packages and not any(importlib.util.find_spec(p) for p in packages):
            problems.append(f"logger.{name} ({target}) needs the {packages[0]} package, which is not "
                            f"installed: pip install {packages[0]}; or choose another logger, e.g. "
                            "logger=many or logger=csv")
    return problems


def bleu_problem(cfg: DictConfig) -> str | None:
    """The message when BLEU for ``data.tgt`` (with ``decode.bleu_tokenize`` when set) cannot be computed."""
    from mt.metrics import bleu_metric  # sacreBLEU is imported only by configs that score

    node = OmegaConf.select(cfg, "data", default=None)
    if not isinstance(node, DictConfig) or "tgt" not in node or OmegaConf.is_missing(node, "tgt"):
        return None
    tgt = node.tgt
    try:  # an old checkpoint's or a tool's decode config may lack the key: the language decides then
        bleu_metric(str(tgt), OmegaConf.select(cfg, "decode.bleu_tokenize", default=None))
    except ConfigError as e:
        return str(e)
    return None


def _leaves(cfg: DictConfig, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, node) of every non-dict value (lists are values), resolving nothing; no hydra.*."""
    for key in cfg.keys():
        if not prefix and key == "hydra":
            continue
        node = cfg._get_node(key)
        dotted = f"{prefix}{key}"
        if isinstance(node, DictConfig) and not node._is_none() and not node._is_missing() \
                and not node._is_interpolation():
            yield from _leaves(node, f"{dotted}.")
        else:
            yield dotted, node
