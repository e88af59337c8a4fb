"""`kerasllm prepare`: tokenize a corpus once into TFRecord shards.

For corpora larger than memory, or reused by many runs: the text is streamed
through the same cleaning, split and tokenizer as training (`open_corpus`),
and the token ids are written by `kerasllm.data.shards`, which also reads
them back when training with `data.prepared: DIR`. The directory is written
under a temporary name and renamed when complete.

Example:
    counts = prepare(config, "data/shakespeare-wp", shard_mb=64)
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path
from typing import Optional

from kerasllm import progress
from kerasllm.data import pipelines, shards
from kerasllm.data.corpus import open_corpus
from kerasllm.data.sources import keyed_text_dataset
from kerasllm.errors import UserError


def prepare(config, out_dir: str | Path, data_dir: Optional[str] = None, shard_mb: float = 64.0) -> dict:
    """Writes the tokenized shards of both splits; returns counts and speed."""
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
        meta = {"tokenizer": dataclasses.asdict(config.tokenizer), "data": shards.data_identity(config), "shards": {}, "tokens": {}}
        with progress.preparing() as report:
            keyed = report.counted(keyed_text_dataset(corpus.source, config.data.cleaning))
            chunks = pipelines.split_token_streams(keyed, corpus.tokenizer, config.data)
            for split, writer in shards.write_splits(chunks, tmp, int(shard_mb * 2**20), report).items():
                meta["shards"][split], meta["tokens"][split] = writer.names, writer.tokens
        if meta["tokens"]["train"] == 0:
            raise UserError(f"data.source: '{config.data.source}' has no text after cleaning (empty corpus)")
        shards.write_meta(tmp, meta)
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
