"""``python -m mt.plot_attention ckpt=PATH text="A man rides a bike."``: a heatmap of the model's cross-attention.

The sentence is translated with the checkpoint's own decoding settings, then the translation is forced through the
decoder and its attention over the source subwords is drawn (rows: target subwords, columns: source subwords; the
Transformer's last decoder layer, heads averaged). Writes a PNG (``out=``, default ``<run folder>/attention.png``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mt.align import AttentionMatrix, align_texts
from mt.config import CONF_DIR
from mt.tokenizer import Tokenizer


def draw_attention(matrix: AttentionMatrix, tokenizer: Tokenizer, path: Path, title: str) -> Path:
    """Save the heatmap of one sentence's attention matrix as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mt.simul.words import pieces

    src, tgt = pieces(tokenizer, matrix.src), pieces(tokenizer, matrix.tgt)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * max(len(src), 4), 1.0 + 0.4 * max(len(tgt), 4)))
    ax.imshow(matrix.weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(tgt)), tgt, fontsize=8)
    ax.set(xlabel="source subwords", ylabel="target subwords", title=title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def attention_heatmap(translator: object, text: str, path: Path, title: str) -> tuple[Path, str]:
    """Translate ``text`` with a :class:`mt.translate.Translator`, draw its attention; returns (png, translation)."""
    translation = translator.translate([text])[0]
    (matrix,) = align_texts(translator.model, translator.tokenizer, [text], [translation])
    return draw_attention(matrix, translator.tokenizer, path, title), translation


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="plot_attention")
def main(cfg: DictConfig) -> None:
    from mt.errors import MTError, one_line_errors, require_values
    from mt.translate import Translator

    with one_line_errors():
        require_values(cfg)
        if not str(cfg.text).strip():
            raise MTError("text= is empty; give the sentence to translate, e.g. text=\"A man rides a bike.\"")
        translator = Translator.from_checkpoint(cfg.ckpt, device=str(cfg.device))
        out = Path(cfg.out) if cfg.out else Path(HydraConfig.get().runtime.output_dir) / "attention.png"
        title = f"{translator.model.traits.family}: cross-attention"
        path, translation = attention_heatmap(translator, str(cfg.text), out, title)
    print(f"{translation}\nheatmap: {path}", flush=True)


if __name__ == "__main__":
    main()
