"""A language-model corpus: the config's text, split, tokenized and packed.

`open_corpus` is the one entry point the trainer, `prepare` and `evaluate`
share. It reads either the raw source (tokenizing on the fly inside tf.data)
or the TFRecord shards written by `kerasllm prepare`, and yields packed
blocks of `seq_len + 1` token ids for each split.

Example:
    corpus = open_corpus(config, tokenizer_dir="runs/x/tokenizer")
    blocks = corpus.blocks("train", seq_len=256)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm import progress
from kerasllm.config import RunConfig
from kerasllm.data import pipelines, shards
from kerasllm.data.sources import Source, keyed_text_dataset, resolve_source
from kerasllm.data.tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text

# Keep tokenized blocks in memory when the corpus is at most this big (a
# resumed run then skips already-seen batches in milliseconds).
CACHE_LIMIT_BYTES = 256 * 2**20
SPLITS = pipelines.SPLITS


@dataclass
class Corpus:
    config: RunConfig
    tokenizer: Tokenizer
    source: Optional[Source] = None  # raw text, or
    prepared: Optional[Path] = None  # shards from `kerasllm prepare`
    service: str = ""  # tf.data service dispatcher that makes the training chunks

    @tf.autograph.experimental.do_not_convert  # the text maps are plain TF ops: no AutoGraph rewrite
    def texts(self, split: str) -> tf.data.Dataset:
        """Batches of `(texts, ends)` of one split of the raw source."""
        return pipelines.split(keyed_text_dataset(self.source, self.config.data.cleaning), self.config.data, split)

    def token_chunks(self, split: str) -> tf.data.Dataset:
        pipelines.check_split(split, SPLITS)  # also for prepared shards, which `pipelines.split` does not see
        if self.prepared is not None:
            chunks = shards.read_chunks(self.prepared, split)
        else:
            chunks = pipelines.token_stream(self.texts(split), self.tokenizer)
        if self.service and split == "train":
            from kerasllm.data import service

            chunks = service.distribute(chunks, self.service)
        return chunks

    def blocks(self, split: str, seq_len: int) -> tf.data.Dataset:
        return pipelines.token_blocks(self.token_chunks(split), seq_len)

    @property
    def cacheable(self) -> bool:
        if self.service:  # every pass comes from the service
            return False
        if self.prepared is not None:
            return shards.num_tokens(self.prepared) * 4 <= CACHE_LIMIT_BYTES
        return self.source.num_bytes * 4 <= CACHE_LIMIT_BYTES


def open_corpus(config: RunConfig, tokenizer_dir: Path, data_dir: Optional[str] = None, for_training: bool = False) -> Corpus:
    """Opens the data; trains and saves the tokenizer if `tokenizer_dir` has none.
    `for_training`: the training split comes from `train.data_service` if set."""
    address = config.train.data_service if for_training else ""
    if address:  # checked before the (possibly long) tokenizer training
        from kerasllm.data import service

        fmt = "text" if config.data.prepared else resolve_source(config.data, data_dir).format
        if fmt != "text":
            raise UserError(
                f"train.data_service: {fmt.upper()} records are read in Python, which the service's workers "
                "cannot run; `kerasllm prepare` the data and train with data.prepared, or use plain text"
            )
        service.check_reachable(address)
    corpus = _open_corpus(config, tokenizer_dir, data_dir)
    corpus.service = address
    return corpus


def _open_corpus(config: RunConfig, tokenizer_dir: Path, data_dir: Optional[str] = None) -> Corpus:
    if config.data.prepared:
        prepared = Path(config.data.prepared)
        shards.check(prepared, config)
        tokenizer = load_tokenizer(prepared / "tokenizer")
        if not (tokenizer_dir / "tokenizer.json").is_file():
            tokenizer.save(tokenizer_dir)
        return Corpus(config, tokenizer, prepared=prepared)
    source = resolve_source(config.data, data_dir)
    if (tokenizer_dir / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(tokenizer_dir)
    else:
        corpus = Corpus(config, None, source=source)
        train_text = corpus.texts("train").map(lambda texts, ends: texts)
        tokenizer = train_tokenizer(config.tokenizer, train_text)
        tokenizer.save(tokenizer_dir)
    return Corpus(config, tokenizer, source=source)


def count_blocks(corpus: Corpus, seq_len: int, cache_file: Optional[Path] = None) -> dict:
    """Blocks per split, counted once and remembered in `cache_file`."""
    if cache_file is not None and cache_file.is_file():
        counts = json.loads(cache_file.read_text())
        if counts.get("seq_len") == seq_len:
            return counts
    counts = {"seq_len": seq_len}
    for split in SPLITS:
        with progress.counting_tokens(split, corpus.service if split == "train" else "") as report:
            counts[split] = pipelines.count_blocks(corpus.token_chunks(split), seq_len, report.advance)
    if counts["train"] == 0:
        raise UserError(
            f"the training split has no block of model.seq_len+1 = {seq_len + 1} tokens; "
            "add text or lower model.seq_len"
        )
    if counts["validation"] == 0:
        raise UserError(
            f"the validation split has no block of {seq_len + 1} tokens; "
            "raise data.val_fraction, lower data.split_group or model.seq_len, or add text"
        )
    if cache_file is not None:
        atomic_write_text(cache_file, json.dumps(counts))
    return counts
