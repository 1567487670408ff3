"""Typed view of the ``data`` config group (conf/data/*.yaml); the defaults live there, not here."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from mt.data.errors import DataError


@dataclass(frozen=True)
class TokenizerConfig:
    """``data.tokenizer``: an existing model (``path``) or the keyword arguments of
    :meth:`mt.tokenizer.Tokenizer.train` (:meth:`train_settings`)."""

    path: str | None
    model_type: str
    vocab_size: int
    character_coverage: float
    hard_vocab_limit: bool
    input_sentence_size: int
    num_threads: int

    def train_settings(self) -> dict:
        """Keyword arguments of :meth:`mt.tokenizer.Tokenizer.train`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "path"}


@dataclass(frozen=True)
class SplitsConfig:
    """``data.splits``: the corpus' name for each split; several test sets are allowed."""

    train: str
    validation: str
    test: list[str]


@dataclass(frozen=True)
class DataConfig:
    """``data``: which corpus, which pair, and how it is tokenized, filtered and batched."""

    name: str
    source: str  # multi30k | text | hf
    src: str
    tgt: str
    languages: list[str] | None
    dir: str | None
    url: str | None
    path: str | None
    config: str | None
    streaming: bool
    splits: SplitsConfig
    limit: int | None
    tokenizer: TokenizerConfig
    max_len: int
    max_len_ratio: float
    max_tokens: int
    bucket_width: int
    num_workers: int
    num_proc: int
    shard_size: int

    @classmethod
    def from_omegaconf(cls, cfg: DictConfig | dict) -> DataConfig:
        """Resolve and check the ``data`` node; unknown, missing or unset keys give a one-line DataError."""
        try:
            raw: dict[str, Any] = (
                OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
                if isinstance(cfg, DictConfig)
                else dict(cfg)
            )
        except MissingMandatoryValue as e:
            key = getattr(e, "full_key", None) or "a key"
            raise DataError(
                f"data config: {key} is not set (???); pass it as an override, e.g. {key}=..."
            ) from None
        _check_keys(cls, raw, "data")
        _check_keys(TokenizerConfig, raw["tokenizer"], "data.tokenizer")
        _check_keys(SplitsConfig, raw["splits"], "data.splits")
        splits = dict(raw["splits"])
        if isinstance(splits["test"], str):
            splits["test"] = [splits["test"]]
        splits["test"] = list(splits["test"] or [])
        raw["splits"] = SplitsConfig(**splits)
        raw["tokenizer"] = TokenizerConfig(**raw["tokenizer"])
        out = cls(**raw)
        if out.source not in ("multi30k", "text", "hf"):
            raise DataError(f"data.source={out.source!r} is unknown; use multi30k, text or hf")
        if out.src == out.tgt:
            raise DataError(f"data.src and data.tgt are both {out.src!r}; choose two different languages")
        if out.max_tokens <= 0 or out.max_len <= 0 or out.bucket_width <= 0 or out.shard_size <= 0:
            raise DataError("data.max_tokens, data.max_len, data.bucket_width and data.shard_size must be positive")
        if out.streaming and out.source != "hf":
            raise DataError(f"data.streaming=true works with data=hf only (this is data.source={out.source})")
        if out.limit is not None and out.limit <= 0:
            raise DataError(f"data.limit={out.limit}: use a positive number of sentences, or null for all")
        return out

    @property
    def pair(self) -> str:
        return f"{self.src}-{self.tgt}"


def _check_keys(cls: type, raw: dict, where: str) -> None:
    names = {f.name for f in fields(cls)}
    unknown, missing = sorted(set(raw) - names), sorted(names - set(raw))
    if unknown or missing:
        raise DataError(
            f"{where} config: unknown keys {unknown} / missing keys {missing}; "
            f"expected exactly {sorted(names)} (see conf/data/multi30k.yaml)"
        )
