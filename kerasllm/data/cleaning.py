"""Text normalisation as TensorFlow ops, so it runs inside tf.data.

Personal data (`data.cleaning.pii`) is found by `kerasllm.data.pii`: with
`mask` the cleaner replaces it with placeholders; with `drop`, the readers
(`sources`, `paired_text`) remove the documents that `has_pii` flags.

Example:
    clean = make_cleaner(CleaningConfig(normalize="NFKC", lowercase=True))
    clean(tf.constant(["Ｈｅｌｌｏ\x07"]))  # -> [b"hello"]
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from kerasllm.config import CleaningConfig
from kerasllm.data.pii import PLACEHOLDERS, find_pii

# C0 and C1 control characters except tab (\x09) and newline (\x0a); this
# also drops the \r of Windows line ends.
CONTROL_CHARS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"


def make_cleaner(config: CleaningConfig):
    """The cleaning of `config` as a function of string tensors.

    Control characters go, then Unicode normalisation, then personal data
    is masked (`pii: mask`; after normalisation, so full-width digits are
    found too, and before lowercasing, which IBANs do not survive), then
    lowercasing (the placeholders keep their capitals).

    Args:
        config: the `CleaningConfig` (`data.cleaning`).

    Returns:
        A function string tensor -> string tensor of the same shape.

    Example:
        clean = make_cleaner(CleaningConfig(pii="mask", lowercase=True))
        clean(tf.constant(["Mail Bob@Example.com"]))  # [b"mail <EMAIL>"]
    """
    masks = config.pii == "mask"

    def clean(text: tf.Tensor) -> tf.Tensor:
        if config.strip_control:
            text = tf.strings.regex_replace(text, CONTROL_CHARS, "")
        if config.normalize != "none":
            text = tf_text.normalize_utf8(text, config.normalize)
        if masks:
            text = find_pii(text)[0]
        if config.lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
            for placeholder in PLACEHOLDERS.values() if masks else ():
                text = tf.strings.regex_replace(text, placeholder.lower(), placeholder)
        return text

    return clean


def is_blank(text: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.length(tf.strings.strip(text)), 0)
