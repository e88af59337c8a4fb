"""A translation corpus: the config's sentence pairs, split, with their
tokenizers (trained on the training split on first use, then loaded from the
run directory) and length-bucketed batches.

Example:
    corpus = open_pair_corpus(config, RunDir("runs/spa-eng"))
    batches = corpus.batches("train", training=True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm.config import RunConfig
from kerasllm.data import pipelines
from kerasllm.data.pair_batches import pair_batches, train_pair_tokenizers
from kerasllm.data.paired_text import ReadReport, pair_dataset, scan_pairs, split_pairs
from kerasllm.data.sources import Source, resolve_source
from kerasllm.data.tokenizers import Tokenizer, load_tokenizer
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text

TARGET_TOKENIZER_DIR = "tokenizer-target"


@dataclass
class PairCorpus:
    config: RunConfig
    source: Source
    report: ReadReport
    source_tokenizer: Tokenizer
    target_tokenizer: Tokenizer
    # The run's task's preprocessor (`Task.preprocessor`); None: the
    # `TranslationPreprocessor` of the two tokenizers.
    preprocessor: Optional[object] = None

    def pairs(self, split: str) -> tf.data.Dataset:
        return split_pairs(pair_dataset(self.source, self.config.data), self.config.data, split)

    def batches(self, split: str, training: bool = False, skip: int = 0) -> tf.data.Dataset:
        """Bucketed batches; for training, endless, reshuffled each pass and
        resumable after `skip` batches."""
        c = self.config
        pairs = self.pairs(split)
        if training:
            pairs = pairs.cache().repeat()
        ds = pair_batches(pairs, self.source_tokenizer, self.target_tokenizer, c.model.seq_len, c.train.batch_size,
                          training=training, seed=c.train.seed, shuffle_buffer=c.data.shuffle_buffer,
                          preprocessor=self.preprocessor)
        return pipelines.shard_by_batch(ds.skip(skip) if skip else ds)


def tokenizer_dirs(run_root: Path) -> tuple[Path, Path]:
    return run_root / "tokenizer", run_root / TARGET_TOKENIZER_DIR


def load_pair_tokenizers(run_root: Path) -> tuple[Tokenizer, Tokenizer]:
    source_dir, target_dir = tokenizer_dirs(run_root)
    source = load_tokenizer(source_dir)
    return source, (load_tokenizer(target_dir) if target_dir.is_dir() else source)


def open_pair_corpus(config: RunConfig, run_root: Path, data_dir: Optional[str] = None) -> PairCorpus:
    """Scans the pairs (malformed lines, empty corpus) and trains and saves the
    tokenizers on first use."""
    source = resolve_source(config.data, data_dir)
    report = scan_pairs(source, config.data)
    source_dir, target_dir = tokenizer_dirs(run_root)
    if (source_dir / "tokenizer.json").is_file():
        source_tok, target_tok = load_pair_tokenizers(run_root)
    else:
        train = split_pairs(pair_dataset(source, config.data), config.data, "train")
        source_tok, target_tok = train_pair_tokenizers(config.tokenizer, train)
        source_tok.save(source_dir)
        if target_tok is not source_tok:
            target_tok.save(target_dir)
    return PairCorpus(config, source, report, source_tok, target_tok)


def count_pair_batches(corpus: PairCorpus, cache_file: Optional[Path] = None) -> dict:
    """Pairs, bucketed batches per pass and the share of padding in them, per
    split; counted once."""
    key = {"seq_len": corpus.config.model.seq_len, "batch_size": corpus.config.train.batch_size}
    if cache_file is not None and cache_file.is_file():
        counts = json.loads(cache_file.read_text())
        if all(counts.get(k) == v for k, v in key.items()) and "train_padding" in counts:
            return counts
    counts = dict(key)
    for split in ("train", "validation", "test"):
        # (batches, pairs, real positions, all positions), encoder and decoder together.
        def add(totals, batch):
            inputs, labels, _ = batch
            masks = [inputs["encoder_padding_mask"], inputs["decoder_padding_mask"]]
            real = sum(tf.reduce_sum(tf.cast(m, tf.int64)) for m in masks)
            size = sum(tf.size(m, out_type=tf.int64) for m in masks)
            return totals + tf.stack([tf.constant(1, tf.int64), tf.cast(tf.shape(labels)[0], tf.int64), real, size])

        totals = corpus.batches(split).reduce(tf.zeros([4], tf.int64), add).numpy()
        counts[f"{split}_batches"], counts[f"{split}_pairs"] = int(totals[0]), int(totals[1])
        counts[f"{split}_padding"] = round(1 - totals[2] / max(totals[3], 1), 4)
    if counts["train_batches"] == 0:
        raise UserError(f"no training pair fits model.seq_len={key['seq_len']} tokens per side; raise it or add pairs")
    if counts["validation_batches"] == 0:
        raise UserError("the validation split has no pairs; raise data.val_fraction or add pairs")
    if cache_file is not None:
        atomic_write_text(cache_file, json.dumps(counts))
    return counts
