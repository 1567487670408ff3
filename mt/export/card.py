"""The model card (``README.md``) of an export, generated from its metadata; scores only as the run recorded them."""

from __future__ import annotations

from typing import Any

USE = {
    "hf": ("python evaluate.py model_dir=DIR input=- output=-",
           'Translator.from_pretrained("DIR").translate(["A man is riding a bike."])'),
    "ctranslate2": ("python evaluate.py model_dir=DIR input=- output=-   # engine=ctranslate2 (auto-detected)",
                    'Translator.from_pretrained("DIR").translate(["A man is riding a bike."])'),
}
FILES = {
    "hf": "`model.safetensors` (weights; tied matrices stored once), `config.json` (model config, vocabulary, "
          "special ids, decode defaults, data, project version), `spm.model` (sentencepiece)",
    "ctranslate2": "`model.bin`, `config.json`, `shared_vocabulary.json` (CTranslate2's own files), `mt_config.json` "
                   "(this project's metadata: model config, vocabulary, decode defaults, data), `spm.model`",
}


def model_card(config: dict[str, Any], fmt: str, quantization: str | None = None) -> str:
    """Markdown model card: data, model, parameters, recorded scores with their sacreBLEU signatures, usage."""
    data, model, decode = config["data"], config["model"], config["decode"]
    src, tgt = data.get("src", "?"), data.get("tgt", "?")
    arch = str(model.get("_target_", "?")).rsplit(".", 1)[-1]
    sizes = ", ".join(f"{k}={v}" for k, v in model.items() if k != "_target_" and not isinstance(v, dict | list))
    lines = [
        "---", f"language: [{src}, {tgt}]", "tags: [translation]", f"library_name: {config['project']['name']}",
        "---", "",
        f"# {arch} {src}→{tgt} ({data.get('name', '?')})", "",
        f"Trained with `mt` {config['project']['version']} (LSTM vs Transformer translation pipeline) and "
        f"exported with `python -m mt.export format={fmt}`" + (f" (quantization {quantization})" if quantization
                                                                else "") + ".", "",
        "## Model", "",
        f"- {config['family']} `{model.get('_target_')}`: {sizes}",
        f"- {config['num_parameters']:,} parameters, joint sentencepiece vocabulary of {config['vocab_size']:,}",
        f"- checkpoint {config['checkpoint']['file']} (step {config['checkpoint']['global_step']}, "
        f"epoch {config['checkpoint']['epoch']})", "",
        "## Data", "",
        f"- `{data.get('name')}` (source `{data.get('source')}`), {src}→{tgt}; splits: "
        + ", ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in (data.get("splits") or {}).items()),
        f"- sentence limit: {data.get('limit')}" if data.get("limit") else "- all sentences of the splits", "",
        "## Scores", "", *_scores(config.get("scores") or {}), "",
        "## Decoding defaults", "",
        f"beam {decode.get('beam_size')}, length penalty {decode.get('len_penalty')}, max length "
        f"{decode.get('max_len_a')} × source + {decode.get('max_len_b')}", "",
        "## Use", "", "```bash", USE[fmt][0], "```", "", "```python", "from mt.translate import Translator",
        USE[fmt][1], "```", "",
        "## Files", "", FILES[fmt], "",
    ]
    return "\n".join(lines)


def _scores(scores: dict[str, Any]) -> list[str]:
    if not scores:
        return ["No scores were recorded for this checkpoint (it is not the best checkpoint of a finished run with "
                "`results.json`); evaluate it with `python evaluate.py model_dir=DIR`."]
    rows = [f"From {scores['source']}.", ""]
    if scores.get("validation_bleu") is not None:
        rows += [f"Best validation BLEU during training: {scores['validation_bleu']:.2f}", ""]
    if scores.get("test"):
        rows += ["| test set | sentences | BLEU | chrF | BLEU signature |", "| --- | --- | --- | --- | --- |"]
        rows += [f"| {name} | {s.get('n_sentences')} | {s['bleu']:.2f} | {s['chrf']:.2f} | `{_cell(s['bleu_signature'])}` |"
                 for name, s in scores["test"].items()]
    return rows


def _cell(text: str) -> str:
    """Text for a Markdown table cell (pipes escaped)."""
    return text.replace("|", "\\|")
