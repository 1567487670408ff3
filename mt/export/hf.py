"""``format=hf``: a hub-style folder of ``model.safetensors``, ``config.json``, ``spm.model`` and a ``README.md``.

Weights are written with safetensors. Tied parameters (one matrix shared by embeddings and output projection)
are stored once; the other names are listed as aliases in the file's metadata and restored on load. Loading
reads JSON, the sentencepiece model and safetensors only: nothing is unpickled, and the model class named in
``config.json`` must be one of this project's (``mt.models.*``), so a downloaded folder cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from mt.checkpoint import load_model_state
from mt.export import ExportError
from mt.export.card import model_card
from mt.export.folder import staged_folder, write_bytes
from mt.export.source import FORMAT_VERSION, ExportSource
from mt.models import build_stored_model, stored_model_class
from mt.models.base import Seq2Seq
from mt.tokenizer import Tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
ALIASES_KEY = "tied_aliases"  # safetensors metadata: JSON {alias name: stored name}


def write_hf(src: ExportSource, out: Path, overwrite: bool = False) -> Path:
    """Write ``src`` as a hub-style folder at ``out`` (atomically: complete or not there)."""
    tensors, aliases = unique_tensors(src.model.state_dict())
    weights = safetensors_bytes(tensors, metadata={"format": "pt", ALIASES_KEY: json.dumps(aliases)})
    with staged_folder(out, overwrite) as tmp:
        write_bytes(tmp / WEIGHTS_FILE, weights)
        write_bytes(tmp / CONFIG_FILE, (json.dumps(src.config, indent=2) + "\n").encode())
        write_bytes(tmp / src.config["tokenizer"]["file"], src.tokenizer.model_bytes)
        write_bytes(tmp / CARD_FILE, model_card(src.config, "hf").encode())
    return out


def unique_tensors(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Split a state dict into tensors to store (each shared matrix once, contiguous) and aliases (name -> stored
    name) for parameters that are the same tensor as an earlier one (tied weights)."""
    seen: dict[tuple, str] = {}
    storages: set[int] = set()
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name, t in state.items():
        ptr = t.untyped_storage().data_ptr()
        key = (ptr, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        t = t.detach().contiguous()
        tensors[name] = t.clone() if t.numel() and ptr in storages else t  # another view of stored memory
        storages.add(ptr)
    return tensors, aliases


def read_config(path: Path) -> dict[str, Any]:
    """An export's metadata (``config.json``), checked to be this project's format and version."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{path}: cannot read the export metadata ({e}); re-export the model") from None
    if not isinstance(config, dict) or config.get("project", {}).get("name") != "mt":
        raise ExportError(f"{path} is not the metadata of a model exported by this project (python -m mt.export)")
    if config.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path} has export format version {config.get('format_version')}, this version of mt "
                          f"reads {FORMAT_VERSION}; re-export the model with this version")
    model = config.get("model")
    target = model.get("_target_") if isinstance(model, dict) else None
    if stored_model_class(target) is None:
        raise ExportError(f"{path}: model class {target!r} is not one of this project's models "
                          "(mt.models.<module>.<Seq2Seq subclass>); refusing to build it")
    return config


def read_tokenizer(folder: Path, config: dict[str, Any]) -> Tokenizer:
    """The export's sentencepiece model, checked against the sha256 and vocabulary size in its metadata."""
    tokenizer = Tokenizer.load(folder / config["tokenizer"]["file"])
    if tokenizer.sha256 != config["tokenizer"]["sha256"] or tokenizer.vocab_size != config["vocab_size"]:
        raise ExportError(f"{folder}: the tokenizer file does not match the one the model was exported with "
                          "(sha256 or vocabulary size differs); re-export the model")
    return tokenizer


def read_hf(folder: Path) -> tuple[Seq2Seq, Tokenizer, dict[str, Any]]:
    """Rebuild the model and tokenizer of a ``format=hf`` folder; returns them and its metadata."""
    config = read_config(folder / CONFIG_FILE)
    tokenizer = read_tokenizer(folder, config)
    try:  # never through Hydra: the file is untrusted
        model = build_stored_model(config["model"], tokenizer.vocab_size)
    except ValueError as e:
        raise ExportError(f"{folder}: {e}; re-export the model") from None
    path = folder / WEIGHTS_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {name: f.get_tensor(name) for name in f.keys()}
            aliases = json.loads((f.metadata() or {}).get(ALIASES_KEY, "{}"))
    except (OSError, SafetensorError, ValueError) as e:
        raise ExportError(f"{path} is missing, truncated or not a safetensors file ({e}); re-export the model") \
            from None
    for alias, stored in aliases.items():
        state[alias] = state[stored]
    load_model_state(model, state, str(path))
    return model.eval(), tokenizer, config
