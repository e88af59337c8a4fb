"""Text sources as streaming tf.data datasets.

A source is a registered dataset name, a file, a directory or a glob. It is
read as a stream of `(text, end)` pairs: `text` is a piece of a document and
`end` says that a document ends after it, which is where the pipeline puts
the end-of-text token. Plain text is read line by line (a document per file
or per line), so a file of any size streams in bounded memory.

Example:
    src = resolve_source(DataConfig(source="corpus/*.txt"))
    for text, end in text_dataset(src, CleaningConfig()).take(3): ...
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from kerasllm.config import CleaningConfig, DataConfig
from kerasllm.data import registry
from kerasllm.errors import UserError

_FORMAT_BY_SUFFIX = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}


@dataclass
class Source:
    """Resolved files and how to read them."""

    files: list
    format: str  # text | jsonl | csv | tsv
    document: str  # file | line (plain text only)
    field: str

    @property
    def num_bytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.files)

    def fingerprint(self, *settings) -> tuple:
        """What identifies this source's text as read with `settings`: its
        files (with their sizes and modification times) and reading format.
        A pass that decides over the whole corpus is remembered by it
        (`kerasllm.data.document_filter`).

        Args:
            *settings: what else decides the text (the cleaning).

        Example:
            resolve_source(DataConfig(source="a.txt")).fingerprint("documents")
        """
        stats = tuple((f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in self.files)
        return (stats, self.format, self.document, self.field) + settings


def _expand(pattern: str) -> list:
    path = Path(pattern).expanduser()
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return sorted(p for p in glob.glob(str(path), recursive=True) if os.path.isfile(p))


def resolve_source(config: DataConfig, data_dir: Optional[str] = None) -> Source:
    """Turns `data.source` into a list of files and a reading format."""
    fmt = config.format
    if config.source in registry.DATASETS:
        info = registry.DATASETS[config.source]
        # As text, a question-answering dataset is its training contexts
        # (dev stays unseen for evaluation).
        splits = ["train"] if info.format == "squad" else list(info.files)
        files = [str(registry.resolve(config.source, split, data_dir)) for split in splits]
        if fmt == "auto":
            fmt = info.format
        return Source(files=files, format=fmt, document=config.document, field=config.field)
    files = _expand(config.source)
    if not files:
        raise UserError(
            f"data.source: no file matches '{config.source}' (give a dataset name — "
            f"{', '.join(sorted(registry.DATASETS))} —, a file, a directory or a glob)"
        )
    if fmt == "auto":
        kinds = {_FORMAT_BY_SUFFIX.get(Path(f).suffix.lower(), "text") for f in files}
        if len(kinds) > 1:
            raise UserError(
                f"data.source: '{config.source}' mixes file formats ({', '.join(sorted(kinds))}); "
                "set data.format or narrow the glob"
            )
        fmt = kinds.pop()
    return Source(files=files, format=fmt, document=config.document, field=config.field)


def _records(source: Source) -> Iterator[str]:
    """Documents of JSONL/CSV/TSV files, one per record, in file order."""
    csv.field_size_limit(2**31 - 1)  # long documents in one cell are fine
    for path in source.files:
        if source.format == "squad":  # one document per paragraph
            from kerasllm.data.squad import read_squad

            yield from dict.fromkeys(e.context for e in read_squad(path).examples)
            continue
        # utf-8-sig: a byte-order mark must not become part of the header.
        with open(path, encoding="utf-8-sig", newline="") as f:
            if source.format == "jsonl":
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                    if not isinstance(record, dict) or source.field not in record:
                        raise UserError(f"{path}:{lineno}: no field '{source.field}' (set data.field)")
                    yield str(record[source.field])
            else:
                if source.format == "tsv":  # TSV has no quoting: a quote is text
                    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                else:
                    reader = csv.reader(f)
                if source.field.isdigit():
                    column = int(source.field)
                else:
                    header = next(reader, None) or []
                    if source.field not in header:
                        raise UserError(
                            f"{path}:1: no column '{source.field}' in the header "
                            f"({', '.join(header) or 'empty'}); set data.field to a column name or index"
                        )
                    column = header.index(source.field)
                for row in reader:
                    if not row:
                        continue
                    if column >= len(row):
                        raise UserError(
                            f"{path}:{reader.line_num}: row has {len(row)} columns, "
                            f"data.field wants column {column}"
                        )
                    yield row[column]


TEXT_BATCH = 1024


def text_dataset(source: Source, cleaning: CleaningConfig):
    """Batches of `(texts, ends)` (string[n], bool[n], n <= TEXT_BATCH),
    cleaned, in a fixed order. Working on batches keeps tf.data's per-element
    overhead off the millions of short lines of a big corpus."""
    return keyed_text_dataset(source, cleaning).map(lambda key, batch: batch)


def keyed_text_dataset(source: Source, cleaning: CleaningConfig):
    """`(key, (texts, ends))` batches: `text_dataset` plus each batch's place
    in the corpus, key = int64 [file number, batch number within the file].

    The key is what the train/validation split hashes. Numbering batches
    within their file (not across the corpus) keeps plain-text sources
    splittable by file, so tf.data service workers can each read some of
    the files and still agree with local reading on which text is
    validation. (JSONL/CSV records are read in Python and numbered as one
    stream, file number 0.)
    """
    import tensorflow as tf

    from kerasllm.data.cleaning import is_blank, make_cleaner
    from kerasllm.data.pii import has_pii

    def with_ends(texts, value: bool):
        return texts, tf.fill(tf.shape(texts), value)

    def numbered(file_number, batches):
        return batches.enumerate().map(lambda b, batch: (tf.stack([file_number, b]), batch))

    if source.format == "text":
        files = tf.data.Dataset.from_tensor_slices((source.files, tf.range(len(source.files), dtype=tf.int64)))
        if source.document == "line":

            def one_file(path, number):
                lines = tf.data.TextLineDataset(path).batch(TEXT_BATCH)
                return numbered(number, lines.map(lambda batch: with_ends(batch, True)))
        else:
            end_marker = tf.data.Dataset.from_tensors((tf.constant([""]), tf.constant([True])))

            def one_file(path, number):
                lines = tf.data.TextLineDataset(path).batch(TEXT_BATCH)
                lines = lines.map(lambda batch: with_ends(tf.strings.join([batch, "\n"]), False))
                return numbered(number, lines.concatenate(end_marker))

        ds = files.flat_map(one_file)
    else:
        ds = tf.data.Dataset.from_generator(
            lambda: _records(source),
            output_signature=tf.TensorSpec([], tf.string),
        ).batch(TEXT_BATCH).map(lambda texts: with_ends(texts, True))
        ds = numbered(tf.constant(0, tf.int64), ds)

    dedupe = cleaning.dedupe
    file_documents = source.format == "text" and source.document == "file"
    if dedupe and file_documents:
        raise UserError(
            "data.cleaning.dedupe removes duplicate documents; it needs one document per line "
            "(data.document: line) or JSONL/CSV records"
        )
    clean = make_cleaner(cleaning)
    drop_pii = cleaning.pii == "drop" and not file_documents

    def clean_batch(key, batch):
        texts, ends = batch
        texts = clean(texts)
        if cleaning.drop_empty:
            # In file mode an empty string with `end` set marks a document's
            # end (the cleaned lines keep their "\n"); it must stay.
            keep = tf.logical_not(is_blank(texts))
            if file_documents:
                keep = tf.logical_or(keep, tf.logical_and(ends, tf.equal(texts, "")))
            texts, ends = tf.boolean_mask(texts, keep), tf.boolean_mask(ends, keep)
        if drop_pii:  # one document per piece here; whole files are `_remove_documents`'
            keep = tf.logical_not(has_pii(texts))
            texts, ends = tf.boolean_mask(texts, keep), tf.boolean_mask(ends, keep)
        return key, (texts, ends)

    ds = ds.map(clean_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if dedupe:  # one document per element here, so `ends` is always true; renumbered as one stream
        texts = ds.map(lambda key, batch: batch[0]).unbatch().unique().batch(TEXT_BATCH)
        ds = numbered(tf.constant(0, tf.int64), texts.map(lambda t: (t, tf.ones_like(t, tf.bool))))
    return _remove_documents(ds, source, cleaning)


def _remove_documents(keyed, source: Source, cleaning: CleaningConfig):
    """`keyed` without the documents that one pass over it finds: near-copies
    of earlier ones, and files holding personal data under `pii: drop` when a
    document is a file (`kerasllm.data.document_filter`)."""
    whole_files = source.format == "text" and source.document == "file"
    drop_pii = cleaning.pii == "drop" and whole_files
    if not (cleaning.near_duplicates or drop_pii):
        return keyed
    import tensorflow as tf

    from kerasllm.data import document_filter

    removal = document_filter.removed_documents(
        keyed, whole_files, cleaning.near_duplicates, drop_pii, key=removal_key(source, cleaning), batch_size=TEXT_BATCH
    )
    if not len(removal.ids):
        return keyed
    return keyed.map(
        lambda key, batch: (key, document_filter.without(key, batch, removal.ids, whole_files, TEXT_BATCH)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )


def removal_key(source: Source, cleaning: CleaningConfig) -> tuple:
    """What `document_filter` remembers a language-model corpus's pass by.

    Args:
        source: the resolved source.
        cleaning: its `data.cleaning`.

    Example:
        document_filter.remembered(removal_key(source, config.data.cleaning))
    """
    return source.fingerprint("documents", repr(cleaning))
