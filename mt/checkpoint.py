"""Checkpoints: atomic writes, safe loading (``weights_only=True``), rebuilding a model, averaging.

Lightning-free, so the programs that only use a trained model (evaluate.py, mt.stream, mt.export) start
without importing it; training's Lightning plugin is :mod:`mt.checkpoint_io`.

A checkpoint is Lightning's dictionary plus plain data only: ``hyper_parameters`` (model/optim/data config as
plain containers), ``tokenizer`` (the sentencepiece model bytes as a uint8 tensor and its sha256) and
``rng``. Nothing in it is a pickled Python object, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from mt.errors import MTError
from mt.textio import atomic_open
from mt.tokenizer import Tokenizer

MODEL_PREFIX = "model."
RAW_WEIGHTS = "current_model_state"  # beside an averaged state_dict (callbacks ema): the optimizer's own weights
WEIGHTS = ("checkpoint", "raw")  # which weights of a checkpoint to use: see :func:`select_weights`


class CheckpointError(MTError):
    """A checkpoint that is missing, unreadable, unsafe or does not fit the request."""


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through :func:`mt.textio.atomic_open`: a kill leaves the previous file or the new one."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint as data only; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .ckpt file "
                              "(runs keep them in <output_dir>/checkpoints/)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain data and was "
                              f"refused (weights_only=True): {first}. Only load checkpoints you trust "
                              "the origin of; this project never writes such objects.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                              "use another checkpoint, e.g. last.ckpt or a best-k one") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no state_dict/hyper_parameters)")
    return ckpt


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint was saved at, read without loading its tensors (memory-mapped)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["global_step"])
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, TypeError,
            ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(e).__name__}); "
                              "delete it to start that run afresh, or restore a copy") from None


def model_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The Seq2Seq's own state dict from a LightningModule checkpoint."""
    return {k[len(MODEL_PREFIX):]: v for k, v in ckpt["state_dict"].items() if k.startswith(MODEL_PREFIX)}


def check_weights(weights: str, key: str = "weights") -> None:
    """A one-line error when ``weights`` (the config key ``key``) is not one of :data:`WEIGHTS`."""
    if weights not in WEIGHTS:
        raise CheckpointError(f"{key}={weights} is not one of {', '.join(WEIGHTS)}; use checkpoint (the weights a "
                              "checkpoint serves) or raw (the trained weights beside a moving average)")


def select_weights(ckpt: dict[str, Any], weights: str, source: str) -> dict[str, Any]:
    """``ckpt`` with the weights that ``weights`` names as its ``state_dict``: ``checkpoint`` (what it serves: the
    moving average when trained with callbacks ema, else the trained weights) or ``raw`` (the optimizer's own
    weights kept beside that average, e.g. to measure what the average adds on the same checkpoint)."""
    check_weights(weights)
    if weights == "checkpoint":
        return ckpt
    if RAW_WEIGHTS not in ckpt:
        raise CheckpointError(f"{source} keeps no moving average of its weights (trained without callbacks ema, or "
                              "an average of checkpoints), so its weights are the trained ones: drop weights=raw")
    return {**ckpt, "state_dict": ckpt[RAW_WEIGHTS]}


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, turning key/shape mismatches into a one-line error that says what differs."""
    check_model_state(model, state, source)
    model.load_state_dict(state)


def check_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line :class:`CheckpointError` when ``state`` does not fit ``model`` (keys or shapes)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in set(own) & set(state) if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                           for name, keys in (("missing", missing), ("unexpected", unexpected),
                                              ("shape differs", shapes)) if keys)
        raise CheckpointError(f"weights in {source} do not fit the configured model ({detail}); the checkpoint "
                              "was made with another architecture, size or tokenizer: use its own config")


def remove_stale_temp_files(folder: str | Path) -> int:
    """Delete the temporary files (``.<name>.ckpt.<random>.tmp``) of atomic writes that a kill interrupted.

    Call only while nothing writes checkpoints into ``folder`` (before fitting). Returns how many were removed.
    """
    removed = 0
    for tmp in Path(folder).glob(".*.ckpt.*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def _architecture(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model config without its dropout rates (which averaging may differ in, e.g. fine-tuning)."""
    model = dict((ckpt.get("hyper_parameters") or {}).get("model") or {})
    return {k: v for k, v in model.items() if "dropout" not in k}


def average_checkpoints(paths: list[str | Path], out: str | Path) -> Path:
    """Average the weights of several checkpoints of one model into a loadable checkpoint at ``out``."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]
    ref = first["state_dict"]
    for p, c in zip(paths[1:], ckpts[1:], strict=True):
        if c.get("tokenizer", {}).get("sha256") != first.get("tokenizer", {}).get("sha256"):
            raise CheckpointError(f"{p} does not use the tokenizer of {paths[0]}; average checkpoints of one run")
        if _architecture(c) != _architecture(first) or {k: v.shape for k, v in c["state_dict"].items()} != \
                {k: v.shape for k, v in ref.items()}:
            raise CheckpointError(f"{p} is not a checkpoint of the same model as {paths[0]} (another architecture "
                                  "or size); average checkpoints of one run")
    avg = {}
    for k, v in ref.items():
        if v.is_floating_point():
            avg[k] = sum(c["state_dict"][k].double() for c in ckpts).div(len(ckpts)).to(v.dtype)
        else:
            avg[k] = v.clone()
    out_ckpt = {k: first[k] for k in ("hyper_parameters", "tokenizer", "pytorch-lightning_version") if k in first}
    out_ckpt.update(state_dict=avg, averaged_from=[str(p) for p in paths],
                    global_step=max(int(c.get("global_step", 0)) for c in ckpts), epoch=first.get("epoch", 0))
    atomic_torch_save(out_ckpt, out)
    return Path(out)


def checkpoint_tokenizer(ckpt: dict[str, Any], source: str, cache_dir: str | Path | None = None) -> Tokenizer:
    """The sentencepiece model a checkpoint carries, checked against its recorded sha256."""
    info = ckpt.get("tokenizer")
    if not info or "model" not in info:
        raise CheckpointError(f"{source} carries no tokenizer; it was not written by this project")
    tokenizer = Tokenizer.from_bytes(info["model"].numpy().tobytes(), cache_dir=cache_dir)
    if tokenizer.sha256 != info["sha256"]:
        raise CheckpointError(f"tokenizer stored in {source} does not match its recorded sha256")
    return tokenizer
