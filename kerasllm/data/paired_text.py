"""Paired text for translation: (source, target) sentence pairs of a parallel corpus.

Reading: TSV/CSV files with each side in a chosen column (header name or
0-based index; further columns such as attribution are ignored), or JSONL
records where each side is a dotted path, e.g.
`{"translation": {"en": ..., "es": ...}}` with `translation.en` and
`translation.es`. A malformed line (too few columns, an empty side, invalid
UTF-8, bad JSON) is skipped and counted, and the report names the first
one; with `data.strict` the first one is an error instead.

Splitting: a pair goes to train, validation or test by a keyed hash of its
cleaned source sentence, so every occurrence of a source sentence lands in
the same split (no leakage between them) on every run and machine, and a
different `data.split_seed` gives a different split.

Example:
    report = scan_pairs(source, cfg.data)   # counts, first malformed line
    pairs = pair_dataset(source, cfg.data)
    train = split_pairs(pairs, cfg.data, "train")
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from typing import Iterator

import tensorflow as tf

from kerasllm.config import DataConfig
from kerasllm.data import document_filter
from kerasllm.data.cleaning import make_cleaner
from kerasllm.data.pii import has_pii
from kerasllm.data.pipelines import check_split
from kerasllm.data.sources import Source
from kerasllm.errors import UserError

SPLITS = ("train", "validation", "test")
_BUCKETS = 1_000_000


@dataclass
class ReadReport:
    """What reading skipped; filled in as the pairs stream past."""

    pairs: int = 0
    skipped: int = 0
    first_skipped: str = ""  # "file:line: reason"
    reasons: dict = field(default_factory=dict)

    def skip(self, where: str, reason: str, strict: bool) -> None:
        if strict:
            raise UserError(f"{where}: {reason} (set data.strict: false to skip such lines)")
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if not self.first_skipped:
            self.first_skipped = f"{where}: {reason}"

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.pairs} pairs"
        return f"{self.pairs} pairs; skipped {self.skipped} malformed lines, the first at {self.first_skipped}"


def _column(header: list, name: str, path: str, key: str) -> int:
    if name.isdigit():
        return int(name)
    if name not in header:
        raise UserError(f"{path}:1: no column '{name}' in the header ({', '.join(header) or 'empty'}); "
                        f"set data.{key} to a column name or index")
    return header.index(name)


def _lookup(record, path: str):
    for part in path.split("."):
        if not isinstance(record, dict) or part not in record:
            return None
        record = record[part]
    return record


def read_pairs(source: Source, config: DataConfig, report: ReadReport) -> Iterator[tuple[str, str]]:
    """(source, target) strings in file order; malformed lines go to `report`."""
    if source.format not in ("tsv", "csv", "jsonl"):
        raise UserError(f"data.source: translation needs TSV, CSV or JSONL pairs, not {source.format} files")
    csv.field_size_limit(2**31 - 1)
    for path in source.files:
        with open(path, "rb") as f:
            lines = iter(enumerate(f, 1))
            columns = None
            if source.format != "jsonl" and not (config.source_field.isdigit() and config.target_field.isdigit()):
                number, raw = next(lines, (1, b""))
                header = next(_split_row(raw.decode("utf-8-sig", errors="replace"), source.format), [])
                columns = (_column(header, config.source_field, path, "source_field"),
                           _column(header, config.target_field, path, "target_field"))
            elif source.format != "jsonl":
                columns = (int(config.source_field), int(config.target_field))
            for number, raw in lines:
                where = f"{path}:{number}"
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    report.skip(where, "not valid UTF-8", config.strict)
                    continue
                if not text.strip():
                    continue
                if source.format == "jsonl":
                    try:
                        record = json.loads(text)
                    except json.JSONDecodeError as e:
                        report.skip(where, f"not valid JSON ({e.msg})", config.strict)
                        continue
                    pair = (_lookup(record, config.source_field), _lookup(record, config.target_field))
                    if not all(isinstance(side, str) for side in pair):
                        report.skip(where, f"no text at {config.source_field} and {config.target_field}", config.strict)
                        continue
                else:
                    row = next(_split_row(text.rstrip("\r\n"), source.format), [])
                    if max(columns) >= len(row):
                        report.skip(where, f"{len(row)} columns, need {max(columns) + 1}", config.strict)
                        continue
                    pair = (row[columns[0]], row[columns[1]])
                if not pair[0].strip() or not pair[1].strip():
                    report.skip(where, "an empty side", config.strict)
                    continue
                report.pairs += 1
                yield pair


def _split_row(line: str, fmt: str):
    if fmt == "tsv":  # TSV has no quoting: a quote is text
        return csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader([line])


def scan_pairs(source: Source, config: DataConfig) -> ReadReport:
    """One pass over the files: how many pairs, what is malformed (and, with
    `data.strict`, the error for the first malformed line)."""
    report = ReadReport()
    for _ in read_pairs(source, config, report):
        pass
    if report.pairs == 0:
        raise UserError(f"data.source: no sentence pairs in {', '.join(source.files)} ({report.summary()})")
    return report


PAIR_BATCH = 1024


def _batched(pairs, size: int = PAIR_BATCH):
    sources, targets = [], []
    for source, target in pairs:
        sources.append(source)
        targets.append(target)
        if len(sources) == size:
            yield sources, targets
            sources, targets = [], []
    if sources:
        yield sources, targets


def pair_dataset(source: Source, config: DataConfig) -> tf.data.Dataset:
    """Batches of cleaned pairs (sources string[n], targets string[n]) in file
    order; malformed lines are left out (`scan_pairs` reports them). Batches,
    because tf.data's per-element cost would dominate short sentences.

    A pair is a document: `data.cleaning.pii: drop` drops a pair with
    personal data on either side, and `near_duplicates` compares pairs by
    their two sides' text (`source<TAB>target`)."""
    spec = tf.TensorSpec([None], tf.string)
    ds = tf.data.Dataset.from_generator(
        lambda: _batched(read_pairs(source, config, ReadReport())), output_signature=(spec, spec)
    )
    clean = make_cleaner(config.cleaning)
    drop_pii = config.cleaning.pii == "drop"

    def clean_pairs(sources, targets):
        sources, targets = clean(sources), clean(targets)
        if drop_pii:
            keep = tf.logical_not(tf.logical_or(has_pii(sources), has_pii(targets)))
            sources, targets = tf.boolean_mask(sources, keep), tf.boolean_mask(targets, keep)
        return sources, targets

    ds = ds.map(clean_pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not config.cleaning.near_duplicates:
        return ds
    # As keyed batches (batch number within one stream), the shape
    # `document_filter` numbers documents by.
    keyed = ds.enumerate().map(lambda b, pair: (tf.stack([tf.constant(0, tf.int64), b]), pair))
    as_text = keyed.map(lambda key, pair: (key, (tf.strings.join([pair[0], pair[1]], "\t"), pair[1])))
    removal = document_filter.removed_documents(
        as_text, whole_files=False, near_duplicates=config.cleaning.near_duplicates, drop_pii=False,
        key=removal_key(source, config), batch_size=PAIR_BATCH,
    )
    if not len(removal.ids):
        return ds
    return keyed.map(lambda key, pair: document_filter.without(key, pair, removal.ids, False, PAIR_BATCH),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def removal_key(source: Source, config: DataConfig) -> tuple:
    """What `document_filter` remembers a translation corpus's pass by.

    Args:
        source: the resolved source.
        config: the `DataConfig` (its fields and cleaning).

    Example:
        document_filter.remembered(removal_key(source, config.data))
    """
    return source.fingerprint("pairs", config.source_field, config.target_field, repr(config.cleaning))


def split_of(sources: tf.Tensor, config: DataConfig) -> tf.Tensor:
    """0 (train), 1 (validation) or 2 (test) for each source sentence."""
    bucket = tf.strings.to_hash_bucket_strong(sources, _BUCKETS, key=[config.split_seed, 0x6B6C6C6D])
    val = int(config.val_fraction * _BUCKETS)
    test = val + int(config.test_fraction * _BUCKETS)
    return tf.where(bucket < val, 1, tf.where(bucket < test, 2, 0))


def split_pairs(pairs: tf.data.Dataset, config: DataConfig, split: str) -> tf.data.Dataset:
    """The pair batches' members that belong to `split`."""
    check_split(split, SPLITS)
    index = SPLITS.index(split)

    def keep(sources, targets):
        mine = tf.equal(split_of(sources, config), index)
        return tf.boolean_mask(sources, mine), tf.boolean_mask(targets, mine)

    return pairs.map(keep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
