"""Trace Keras code into graphs that run without XLA.

Keras' TensorFlow backend implements `ops.slice_update` with XLA's dynamic
update slice (the `XlaDynamicUpdateSlice` op), and keras-hub's cached
attention and samplers call it on every decoding step. keras-hub picked it
because `TensorStridedSliceUpdate` needs compile-time-constant indices under
XLA (keras-team/keras-hub#1049); the price is that a SavedModel traced that
way fails in stock TF Serving, which has no kernel for the op outside XLA
(tensorflow/serving#2217, tensorflow/tfjs#7975).

Our exports are not XLA-compiled, so while `no_xla_ops()` is active the
update is a `TensorStridedSliceUpdate`, a core op with CPU and GPU kernels.
`tests/test_export.py::test_keras_slice_update_still_needs_the_workaround`
fails once Keras stops emitting the XLA op, so this file can go.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from kerasllm.compat import keras_slice_update_replaced


def slice_update(inputs, start_indices, updates):
    """`inputs[start:start + updates.shape] = updates` with core TF ops."""
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(tf.convert_to_tensor(updates), inputs.dtype)
    begin = tf.stack([tf.cast(i, tf.int32) for i in start_indices])
    end = begin + tf.shape(updates, out_type=tf.int32)
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=inputs, begin=begin, end=end, strides=tf.ones_like(begin), value=updates
    )


@contextlib.contextmanager
def no_xla_ops():
    """Within this block, Keras' `ops.slice_update` traces to core TF ops."""
    with keras_slice_update_replaced(slice_update):
        yield
