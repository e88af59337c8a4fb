"""Documents removed by looking at the whole corpus first: near-copies
(`data.cleaning.near_duplicates`) and, where a document is a whole file,
files holding personal data (`data.cleaning.pii: drop`).

Neither can be decided one tf.data element at a time: a near-copy needs
every earlier document, and a file's last line may hold the e-mail address
that drops its first. So one pass over the cleaned documents, in Python,
decides (`removed_documents`), and a graph-mode map removes them
(`without`), before the train/validation split. The pass runs once per
process and corpus (it is remembered), however many times the pipeline is
built.

Documents are named by a number fixed by where they are, not by a running
count, so that tf.data service workers, which each read some of the files,
agree: the file number for a document per file, otherwise
`file * 2**40 + place`, the place being the one the split hashes
(`batch * TEXT_BATCH + position` within the file).

Example:
    removal = removed_documents(keyed, whole_files=False, near_duplicates=0.9, drop_pii=False, key=k)
    keyed = keyed.map(lambda key, batch: (key, without(key, batch, removal.ids, False)))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np
import tensorflow as tf

from kerasllm.data.near_duplicates import NearDuplicates
from kerasllm.data.pii import has_pii

FILE_SHIFT = 2**40


@dataclass
class Removal:
    """What the pass decided: the documents to remove, and why."""

    ids: np.ndarray  # sorted int64 document numbers
    near_copies: int = 0
    with_pii: int = 0  # whole-file documents dropped for personal data


_REMEMBERED: dict = {}


def document_ids(key: tf.Tensor, texts: tf.Tensor, whole_files: bool, batch_size: int) -> tf.Tensor:
    """The document number of each piece of a keyed batch (see the module doc).

    Args:
        key: int64 [file number, batch number within the file].
        texts: the batch's pieces, string[n].
        whole_files: a document is a whole file.
        batch_size: the pieces per batch the keys count in.

    Returns:
        int64[n].

    Example:
        document_ids(tf.constant([2, 1], tf.int64), tf.constant(["a", "b"]), False, 1024)
        # [2 * 2**40 + 1024, 2 * 2**40 + 1025]
    """
    n = tf.size(texts, out_type=tf.int64)
    if whole_files:
        return tf.fill([n], key[0])
    return key[0] * FILE_SHIFT + key[1] * batch_size + tf.range(n)


def without(key, batch, ids: np.ndarray, whole_files: bool, batch_size: int):
    """`batch` without the pieces of the documents `ids`.

    Args:
        key: the batch's key (`document_ids`).
        batch: two parallel string/bool vectors, `(texts, ends)` or a
            translation batch's `(sources, targets)`.
        ids: sorted int64 document numbers to remove.
        whole_files: a document is a whole file.
        batch_size: the pieces per batch the keys count in.

    Returns:
        The two vectors without those pieces.

    Example:
        keyed.map(lambda key, batch: (key, without(key, batch, removal.ids, False, TEXT_BATCH)))
    """
    texts, ends = batch
    if len(ids) == 0:
        return texts, ends
    listed = tf.constant(ids, tf.int64)
    mine = document_ids(key, texts, whole_files, batch_size)
    at = tf.minimum(tf.searchsorted(listed, mine), len(ids) - 1)
    keep = tf.not_equal(tf.gather(listed, at), mine)
    return tf.boolean_mask(texts, keep), tf.boolean_mask(ends, keep)


def removed_documents(keyed: tf.data.Dataset, whole_files: bool, near_duplicates: float, drop_pii: bool,
                      key: Hashable, batch_size: int) -> Removal:
    """One pass over keyed `(key, (texts, ends))` batches: which documents go.

    Args:
        keyed: the cleaned pieces of text, keyed as `sources.keyed_text_dataset`.
        whole_files: a document is a whole file (its pieces end at `ends`).
        near_duplicates: Jaccard threshold, or 0 for none.
        drop_pii: drop whole-file documents that hold personal data.
        key: what identifies this corpus and cleaning: the pass runs once
            per key in a process.
        batch_size: the pieces per batch the keys count in (TEXT_BATCH).

    Returns:
        A `Removal`.

    Example:
        removal = removed_documents(keyed, False, 0.8, False, key=removal_key(source, cleaning), batch_size=1024)
        removal.near_copies  # how many documents it removes as near-copies
    """
    if key in _REMEMBERED:
        return _REMEMBERED[key]
    finder = NearDuplicates(near_duplicates) if near_duplicates else None
    flagged = keyed.map(lambda k, b: (k, b[0], b[1], has_pii(b[0]) if drop_pii else tf.zeros(tf.shape(b[0]), tf.bool)),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    removed, with_pii, sketch, pii = [], 0, None, False
    for k, texts, ends, flags in flagged.as_numpy_iterator():
        ids = np.full(len(texts), k[0]) if whole_files else k[0] * FILE_SHIFT + k[1] * batch_size + np.arange(len(texts))
        for doc, text, end, flag in zip(ids, texts, ends, flags):
            if not whole_files:
                if finder is not None and finder.is_near_copy([text.decode("utf-8")]):
                    removed.append(doc)
                continue
            if sketch is None and finder is not None:
                sketch = finder.sketch()
            if sketch is not None:
                sketch.add(text.decode("utf-8"))
            pii = pii or bool(flag)
            if end:
                if pii:
                    with_pii += 1
                    removed.append(doc)
                elif sketch is not None and finder.check(sketch):
                    removed.append(doc)
                sketch, pii = None, False
    removal = Removal(np.unique(np.array(removed, np.int64)), finder.removed if finder else 0, with_pii)
    _REMEMBERED[key] = removal
    return removal


def remembered(key: Hashable) -> Optional[Removal]:
    """The `Removal` already decided for `key` in this process, if any.

    Args:
        key: what `removed_documents` was given.

    Example:
        remembered(removal_key(source, cleaning)).near_copies
    """
    return _REMEMBERED.get(key)
