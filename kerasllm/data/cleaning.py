"""Text normalisation as TensorFlow ops, so it runs inside tf.data.

Example:
    clean = make_cleaner(CleaningConfig(normalize="NFKC", lowercase=True))
    clean(tf.constant(["Ｈｅｌｌｏ\x07"]))  # -> [b"hello"]
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from kerasllm.config import CleaningConfig

# C0 and C1 control characters except tab (\x09) and newline (\x0a); this
# also drops the \r of Windows line ends.
CONTROL_CHARS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"


def make_cleaner(config: CleaningConfig):
    """Returns a function string tensor -> string tensor (any shape)."""

    def clean(text: tf.Tensor) -> tf.Tensor:
        if config.strip_control:
            text = tf.strings.regex_replace(text, CONTROL_CHARS, "")
        if config.normalize != "none":
            text = tf_text.normalize_utf8(text, config.normalize)
        if config.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        return text

    return clean


def is_blank(text: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.length(tf.strings.strip(text)), 0)
