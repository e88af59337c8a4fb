"""`kerasllm prepare`: tokenize a corpus once into TFRecord shards.

For corpora larger than memory, or reused by many runs: the text is streamed
through the same cleaning, split and tokenizer as training, and each batch of
token ids is written as one serialized int32 tensor record; a shard file is
closed once it has reached `shard_mb` (so a shard can exceed it by one record). Training with `data.prepared: DIR` then
reads the shards with a parallel, deterministic interleave.

    DIR/
      meta.json                         token counts, shard list, tokenizer config
      tokenizer/                        the tokenizer learned from the training split
      train-00000.tfrecord, ...
      validation-00000.tfrecord, ...

The directory is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm import progress
from kerasllm.errors import UserError

META_FILE = "meta.json"


def _meta(directory: Path) -> dict:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise UserError(f"data.prepared: {directory} has no {META_FILE}; create it with `kerasllm prepare`")
    return json.loads(path.read_text())


def _data_identity(config) -> dict:
    """The data settings that decide what the shards contain."""
    data = dataclasses.asdict(config.data)
    return {k: data[k] for k in ("source", "format", "document", "field", "val_fraction", "split_group", "split_seed", "cleaning")}


def check(directory: Path, config) -> None:
    """The prepared data must come from the same data and tokenizer settings."""
    meta = _meta(directory)
    for section, wanted in (("tokenizer", dataclasses.asdict(config.tokenizer)), ("data", _data_identity(config))):
        if meta.get(section) != wanted:
            raise UserError(
                f"data.prepared: {directory} was prepared with {section} settings {meta.get(section)}, "
                f"but the config asks for {wanted}; prepare again or match the {section} section"
            )


def num_tokens(directory: Path) -> int:
    return sum(_meta(directory)["tokens"].values())


def shard_files(directory: Path, split: str) -> list:
    return [str(Path(directory) / name) for name in _meta(directory)["shards"][split]]


def read_chunks(directory: Path, split: str, files: Optional[list] = None) -> tf.data.Dataset:
    """The token stream of one split (or of some of its shard `files`) as
    1-D int32 chunks, in a fixed order."""
    files = shard_files(directory, split) if files is None else files
    if not files:
        return tf.data.Dataset.from_tensors(tf.zeros([0], tf.int32)).take(0)
    # Shards are read one after another, in the order they were written (a
    # document may continue from one shard into the next); reading is
    # buffered and parsing runs in parallel.
    ds = tf.data.TFRecordDataset(files, buffer_size=8 << 20)
    return ds.map(
        lambda record: tf.io.parse_tensor(record, tf.int32), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )


class _ShardWriter:
    """Writes records to `<split>-NNNNN.tfrecord`, starting a new file once
    the current one has reached `shard_bytes`."""

    def __init__(self, out: Path, split: str, shard_bytes: int):
        self.out, self.split, self.shard_bytes = out, split, shard_bytes
        self.names, self.tokens, self._writer, self._written = [], 0, None, 0

    def write(self, record: bytes, tokens: int) -> None:
        if tokens == 0:
            return
        if self._writer is None or self._written >= self.shard_bytes:
            self.close()
            self.names.append(f"{self.split}-{len(self.names):05d}.tfrecord")
            self._writer = tf.io.TFRecordWriter(str(self.out / self.names[-1]))
            self._written = 0
        self._writer.write(record)
        self._written += len(record)
        self.tokens += tokens

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _write_splits(chunks: tf.data.Dataset, out: Path, shard_bytes: int, report=None) -> dict:
    """Writes (train, validation) chunk pairs; returns the writers by split.
    `report` (a `progress.Preparing`) learns how many shards are written."""
    records = chunks.map(
        lambda train, val: (tf.io.serialize_tensor(train), tf.size(train), tf.io.serialize_tensor(val), tf.size(val)),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)
    writers = {split: _ShardWriter(out, split, shard_bytes) for split in ("train", "validation")}
    if report is not None:
        report.shards = lambda: sum(len(w.names) for w in writers.values())
    try:
        for train, n_train, val, n_val in records.as_numpy_iterator():
            writers["train"].write(train, int(n_train))
            writers["validation"].write(val, int(n_val))
    finally:
        for writer in writers.values():
            writer.close()
    return writers


def prepare(config, out_dir: str | Path, data_dir: Optional[str] = None, shard_mb: float = 64.0) -> dict:
    """Writes the tokenized shards of both splits; returns counts and speed."""
    from kerasllm.data import pipelines
    from kerasllm.data.corpus import open_corpus
    from kerasllm.data.sources import keyed_text_dataset

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} already exists and is not empty; choose a new directory or remove it")
    if config.data.prepared:
        raise UserError("data.prepared is set: the data is already prepared; unset it to prepare from data.source")
    tmp = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.perf_counter()
    try:
        corpus = open_corpus(config, tmp / "tokenizer", data_dir)
        meta = {"tokenizer": dataclasses.asdict(config.tokenizer), "data": _data_identity(config), "shards": {}, "tokens": {}}
        with progress.preparing() as report:
            keyed = report.counted(keyed_text_dataset(corpus.source, config.data.cleaning))
            chunks = pipelines.split_token_streams(keyed, corpus.tokenizer, config.data)
            for split, writer in _write_splits(chunks, tmp, int(shard_mb * 2**20), report).items():
                meta["shards"][split], meta["tokens"][split] = writer.names, writer.tokens
        if meta["tokens"]["train"] == 0:
            raise UserError(f"data.source: '{config.data.source}' has no text after cleaning (empty corpus)")
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    source_mb = corpus.source.num_bytes / 1e6
    return {
        "out": str(out),
        "source_mb": round(source_mb, 2),
        "tokens": meta["tokens"],
        "shards": {k: len(v) for k, v in meta["shards"].items()},
        "seconds": round(seconds, 2),
        "mb_per_second": round(source_mb / seconds, 2) if seconds else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
