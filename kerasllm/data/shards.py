"""TFRecord shards of token ids and their `meta.json`: reading and writing.

`kerasllm prepare` (kerasllm/data/prepare.py) writes a directory of shards;
training with `data.prepared: DIR` reads it back through `read_chunks`. Each
batch of token ids is one serialized int32 tensor record; a shard file is
closed once it has reached `shard_bytes` (so a shard can exceed it by one
record).

    DIR/
      meta.json                         token counts, shard list, tokenizer config
      tokenizer/                        the tokenizer learned from the training split
      train-00000.tfrecord, ...
      validation-00000.tfrecord, ...

This module holds only the file format; it imports nothing of kerasllm.data,
so the corpus can read shards without a cycle back to the `prepare` command.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm.errors import UserError

META_FILE = "meta.json"


def _meta(directory: Path) -> dict:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise UserError(f"data.prepared: {directory} has no {META_FILE}; create it with `kerasllm prepare`")
    return json.loads(path.read_text())


def data_identity(config) -> dict:
    """The data settings that decide what the shards contain."""
    data = dataclasses.asdict(config.data)
    return {k: data[k] for k in ("source", "format", "document", "field", "val_fraction", "split_group", "split_seed", "cleaning")}


def _cleaning_defaults(data: Optional[dict]) -> Optional[dict]:
    """A `meta.json` data section with the cleaning keys added since it was
    written, at their defaults (what it was prepared with)."""
    if not isinstance(data, dict) or not isinstance(data.get("cleaning"), dict):
        return data
    from kerasllm.config import CleaningConfig

    return {**data, "cleaning": {**dataclasses.asdict(CleaningConfig()), **data["cleaning"]}}


def check(directory: Path, config) -> None:
    """The prepared data must come from the same data and tokenizer settings."""
    meta = _meta(directory)
    meta["data"] = _cleaning_defaults(meta.get("data"))
    for section, wanted in (("tokenizer", dataclasses.asdict(config.tokenizer)), ("data", data_identity(config))):
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


class ShardWriter:
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


def write_splits(chunks: tf.data.Dataset, out: Path, shard_bytes: int, report=None) -> dict:
    """Writes (train, validation) chunk pairs; returns the writers by split.
    `report` (a `progress.Preparing`) learns how many shards are written."""
    records = chunks.map(
        lambda train, val: (tf.io.serialize_tensor(train), tf.size(train), tf.io.serialize_tensor(val), tf.size(val)),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)
    writers = {split: ShardWriter(out, split, shard_bytes) for split in ("train", "validation")}
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


def write_meta(directory: Path, meta: dict) -> None:
    """Writes `meta.json` (token counts, shard lists, tokenizer and data settings)."""
    (Path(directory) / META_FILE).write_text(json.dumps(meta, indent=2))
