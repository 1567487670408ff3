"""Joint SentencePiece subword model with the pipeline's fixed special ids (pad 0, unk 1, bos 2, eos 3).

Trained in memory from an iterator of sentences (no temp corpus files) and written atomically; a model
whose special ids differ is refused at load time, since every tensor in the pipeline relies on them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from mt.batch import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from mt.errors import MTError
from mt.textio import atomic_open

log = logging.getLogger(__name__)

MODEL_FILE = "spm.model"
INFO_FILE = "info.json"
_SPECIAL_IDS = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}


class TokenizerError(MTError):
    """A tokenizer model that cannot be used (wrong special ids, unreadable file)."""


class Tokenizer:
    """A SentencePiece model: ``encode`` adds no BOS/EOS, ``decode`` drops specials and detokenizes."""

    def __init__(self, model_bytes: bytes, path: Path | None = None) -> None:
        """Wrap serialized model bytes; ``path`` is the .model file they came from (if any)."""
        where = path if path is not None else "<bytes>"
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(model_bytes)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError with multi-line text
            raise TokenizerError(f"{where}: not a sentencepiece model ({_one_line(e)})") from None
        found = {"pad": sp.pad_id(), "unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id()}
        if found != _SPECIAL_IDS:
            got = " ".join(f"{k}={v}" for k, v in found.items())
            raise TokenizerError(
                f"{where}: special ids {got}, but the pipeline needs pad=0 unk=1 bos=2 eos=3; "
                "use a model trained with those ids (Tokenizer.train does; spm_train: --pad_id=0 --unk_id=1 "
                "--bos_id=2 --eos_id=3)"
            )
        self._sp = sp
        self._bytes = model_bytes
        self.path = path
        self.sha256 = hashlib.sha256(model_bytes).hexdigest()

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a .model file (special ids are checked)."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise TokenizerError(f"{path}: cannot read tokenizer model ({e.strerror})") from None
        return cls(data, path)

    @classmethod
    def from_bytes(cls, model_bytes: bytes, cache_dir: str | Path | None = None) -> Tokenizer:
        """Rebuild from :attr:`model_bytes` (e.g. stored in a checkpoint).

        With ``cache_dir`` the model is also stored (once, atomically) as
        ``{cache_dir}/tokenizer/sha256-<hash>/spm.model`` and :attr:`path` points there; otherwise it is None.
        """
        tok = cls(model_bytes)
        if cache_dir is not None:
            path = Path(cache_dir) / "tokenizer" / f"sha256-{tok.sha256[:16]}" / MODEL_FILE
            if not path.is_file():
                atomic_write(path, model_bytes)
            tok.path = path
        return tok

    @classmethod
    def train(
        cls,
        sentences: Iterable[str],
        path: str | Path,
        *,
        model_type: str,
        vocab_size: int,
        character_coverage: float,
        hard_vocab_limit: bool,
        input_sentence_size: int,
        num_threads: int,
    ) -> Tokenizer:
        """Train on ``sentences`` and write the model atomically to ``path``.

        :param input_sentence_size: at most this many sentences are sampled for training (0 = all).
        :param num_threads: training threads (keep 1 on a busy machine: spm's threads wait on each other).
        """
        path = Path(path)
        buf = io.BytesIO()
        spm.set_random_generator_seed(0)  # sentence sampling: the model is a function of corpus + settings
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=buf,
                model_type=model_type,
                vocab_size=vocab_size,
                character_coverage=character_coverage,
                hard_vocab_limit=hard_vocab_limit,
                input_sentence_size=input_sentence_size,
                shuffle_input_sentence=True,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                num_threads=num_threads,
                minloglevel=2,
            )
        except RuntimeError as e:
            raise TokenizerError(
                f"sentencepiece training for {path} failed ({_one_line(e)}); lower data.tokenizer.vocab_size "
                "or set data.tokenizer.hard_vocab_limit=false"
            ) from None
        atomic_write(path, buf.getvalue())
        return cls.load(path)

    # -- properties ---------------------------------------------------------------------------------------
    @property
    def model_bytes(self) -> bytes:
        """The serialized model (what :meth:`from_bytes` takes)."""
        return self._bytes

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    # -- use ----------------------------------------------------------------------------------------------
    def encode(self, sentences: Sequence[str]) -> list[list[int]]:
        """Subword ids of each sentence; no BOS/EOS added."""
        return self._sp.encode(list(sentences))

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenized text of each id sequence.

        A sequence is cut at its first EOS; PAD and BOS are skipped. UNK stays (SentencePiece renders it as
        " ⁇ "), so unknown words remain visible in the output.
        """
        clean = []
        for seq in ids:
            seq = [int(i) for i in seq]
            if EOS_ID in seq:
                seq = seq[: seq.index(EOS_ID)]
            clean.append([i for i in seq if i != PAD_ID and i != BOS_ID])
        return self._sp.decode(clean)

    def __getstate__(self) -> dict:  # picklable for datasets.map(num_proc>1) and DataLoader workers
        return {"model_bytes": self._bytes, "path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_bytes"], state["path"])

    def __repr__(self) -> str:
        return f"Tokenizer(path={self.path}, vocab_size={self.vocab_size}, sha256={self.sha256[:12]})"


def load_or_train(
    folder: str | Path, sentences: Callable[[], Iterable[str]], settings: dict, about: dict
) -> Tokenizer:
    """The tokenizer cached in ``folder``, or a new one trained on ``sentences()`` and stored there.

    :param settings: keyword arguments of :meth:`Tokenizer.train` (``data.tokenizer`` config).
    :param about: JSON-able description of the training corpus, written next to the model for humans.
    """
    folder = Path(folder)
    model = folder / MODEL_FILE
    if model.exists():
        if (cached := _intact(folder)) is not None:
            log.info("tokenizer: reusing %s", model)
            return cached
        log.warning("tokenizer: the cached model in %s is damaged or incomplete (its checksum, written last, does "
                    "not match); training it again", folder)
    folder.mkdir(parents=True, exist_ok=True)
    log.info("tokenizer: training %s %s -> %s", settings["model_type"], settings["vocab_size"], model)
    tok = Tokenizer.train(sentences(), model, **settings)
    info = {"settings": settings, "corpus": about, "sha256": tok.sha256, "vocab_size": tok.vocab_size}
    atomic_write(folder / INFO_FILE, json.dumps(info, indent=2, sort_keys=True).encode())
    return tok


def _intact(folder: Path) -> Tokenizer | None:
    """The cached model when it loads and matches the sha256 in the info file written after it, else None."""
    try:
        info = json.loads((folder / INFO_FILE).read_text())
        tok = Tokenizer.load(folder / MODEL_FILE)
    except (OSError, ValueError, TokenizerError):
        return None
    return tok if tok.sha256 == info.get("sha256") else None


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`mt.textio.atomic_open`)."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
