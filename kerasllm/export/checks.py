"""In-graph request checks for the exported modules: a bad request fails with
an InvalidArgument error that names the input and what it may be, before
any decoding starts."""

from __future__ import annotations

import tensorflow as tf


def nonempty(texts, name: str):
    return tf.debugging.assert_positive(tf.size(texts), message=f"{name}: empty batch; send at least one string")


def within(value, low, high, message: str) -> list:
    return [tf.debugging.assert_greater_equal(value, low, message=message),
            tf.debugging.assert_less_equal(value, high, message=message)]


def after(checks: list, tensor):
    """`tensor`, available only once `checks` passed."""
    with tf.control_dependencies(checks):
        return tf.identity(tensor)
