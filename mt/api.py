"""The library's public interface: what tools (``mtlab``), scripts and users build on.

Everything here is stable API; modules not re-exported here are internals and may change. ``mtlab`` imports
only this module (a test checks it).
"""

from mt.batch import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Batch
from mt.checkpoint import CheckpointError, checkpoint_step, load_checkpoint
from mt.config import CONF_DIR, compose
from mt.data import TranslationDataModule
from mt.data.corpus import eval_split_names
from mt.device import LIGHTNING, autocast_for, has_bf16_units, resolve_device, short_precision
from mt.errors import MTError, one_line_errors
from mt.evaluate import PairedSignificance, paired_significance
from mt.export import ExportError
from mt.export.command import export_model
from mt.loss import batch_loss, label_smoothed_nll, output_loss, projected_label_smoothed_nll
from mt.metrics import Score, corpus_score
from mt.models import DecoderState, EncoderOut, ModelTraits, Seq2Seq, build_model, reorder_state
from mt.module import EvalReferences, TranslationModule
from mt.pipeline import TrainResult, build_module, train
from mt.plot_attention import attention_heatmap
from mt.runlogs import csv_versions, metric_rows
from mt.search import SearchConfig, search
from mt.simul import CorpusLatency, corpus_latency, wait_k_visibility
from mt.simul.evaluate import SimulResult, translate_simul
from mt.textio import atomic_write_text, read_lines
from mt.tokenizer import Tokenizer
from mt.translate import (
    ScoredTranslation,
    Translator,
    decode_batch,
    model_from_checkpoint,
    resolve_checkpoint,
    search_config,
)

__all__ = [
    "BOS_ID", "Batch", "CONF_DIR", "CheckpointError", "CorpusLatency", "DecoderState", "EOS_ID", "EncoderOut",
    "EvalReferences", "ExportError", "LIGHTNING", "MTError", "ModelTraits", "PAD_ID", "PairedSignificance",
    "Score", "ScoredTranslation", "SearchConfig", "Seq2Seq", "SimulResult", "Tokenizer", "TrainResult",
    "TranslationDataModule", "TranslationModule", "Translator", "UNK_ID", "atomic_write_text", "attention_heatmap", "autocast_for",
    "batch_loss", "build_model", "build_module", "checkpoint_step", "compose", "corpus_latency", "corpus_score", "csv_versions",
    "decode_batch", "eval_split_names", "export_model", "has_bf16_units", "label_smoothed_nll", "load_checkpoint", "metric_rows",
    "model_from_checkpoint", "one_line_errors", "output_loss", "paired_significance", "projected_label_smoothed_nll",
    "read_lines", "reorder_state", "resolve_checkpoint",
    "resolve_device", "search", "search_config", "short_precision", "train", "translate_simul",
    "wait_k_visibility",
]
