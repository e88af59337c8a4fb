"""Running a function over the rows of a batch a bounded number at a time.

Serving graphs meet inputs of any size: a book-length passage is thousands
of question-answering windows, a long line to score thousands of context
windows, and one model call over all of them would need gigabytes. `map_in_chunks`
cuts the rows into equal chunks of at most `most` (the last padded with
zero rows, whose results are dropped) and runs `fn` on each in a `tf.map_fn`
(core While and TensorList ops, which stock TF Serving has). Up to `most`
rows are one call, as without it.

Example:
    log_probs = map_in_chunks(score_rows, {"inputs": ids, "targets": next_ids}, most=256,
                              fn_output_signature=tf.TensorSpec([None, None], tf.float32))
"""

from __future__ import annotations

import tensorflow as tf


def map_in_chunks(fn, rows: dict, most, fn_output_signature):
    """`fn(chunk)` for chunks of `rows` (a dict of tensors sharing their
    first dimension), its outputs (a tensor or a tuple of them, each with
    the rows first) joined back in order."""
    n = tf.shape(next(iter(rows.values())))[0]
    most = tf.maximum(tf.cast(most, tf.int32), 1)
    count = tf.maximum((n + most - 1) // most, 1)
    size = (n + count - 1) // count

    def chunked(value):
        # Zeros: a plain Pad op (the serving allowlist has no PadV2).
        padding = tf.concat([[[0, count * size - n]], tf.zeros([tf.rank(value) - 1, 2], tf.int32)], axis=0)
        value = tf.pad(value, padding)
        return tf.reshape(value, tf.concat([[count, size], tf.shape(value)[1:]], axis=0))

    # One chunk at a time: in a graph map_fn would otherwise run up to 10
    # at once, and memory is the point.
    out = tf.map_fn(fn, {k: chunked(v) for k, v in rows.items()}, fn_output_signature=fn_output_signature,
                    parallel_iterations=1)

    def joined(value):
        return tf.reshape(value, tf.concat([[count * size], tf.shape(value)[2:]], axis=0))[:n]

    return tuple(joined(v) for v in out) if isinstance(out, (tuple, list)) else joined(out)
