"""What decoding wrote after each prompt: its new ids, and its text.

Pure TensorFlow, so the same code runs inside an exported SavedModel and
in-process. Strings become the padded id batch that decoding fills through
the task's `LanguageModelPreprocessor` (`generate_preprocess`); here the
decoded batch is cut at each row's stop id and turned back into text by the
same preprocessor (`generate_postprocess`).

Example:
    preprocessor = LanguageModelPreprocessor(tokenizer)
    batch = preprocessor.generate_preprocess(tf.constant(["ROMEO:"]), 50, context=128)
    ids = model.generate(batch.inputs(), stop_token_ids=(tokenizer.eot_id,))["token_ids"]
    text, num_tokens = decode_continuations(preprocessor, ids, batch, 50)
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.data.preprocessors.language_model import LanguageModelPreprocessor, PromptBatch
from kerasllm.models.decoding import mask_after_stop


def with_start_token(tokenizer, texts) -> tf.RaggedTensor:
    """Ragged ids of `texts`, each row led by the end-of-text token
    (`LanguageModelPreprocessor.with_start_token`, for a caller that holds
    only the tokenizer)."""
    return LanguageModelPreprocessor(tokenizer).with_start_token(texts)


def new_token_ids(token_ids, batch: PromptBatch, max_new_tokens, pad_id: int, stop_token_ids):
    """(ids int32[batch, max_new_tokens], num_tokens int32[batch]): what
    decoding wrote after each prompt, up to `max_new_tokens` and before the
    first stop id, padded with `pad_id`."""
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    positions = tf.range(tf.shape(token_ids)[1])[None, :]
    new = tf.logical_and(mask_after_stop(token_ids, batch.prompt_mask, stop_token_ids),
                         tf.logical_not(batch.prompt_mask))
    new = tf.logical_and(new, positions < (batch.lengths + max_new_tokens)[:, None])
    for stop in stop_token_ids:
        new = tf.logical_and(new, tf.not_equal(token_ids, stop))
    ids = tf.ragged.boolean_mask(token_ids, new)
    dense = ids.to_tensor(default_value=pad_id, shape=tf.stack([tf.shape(token_ids)[0], max_new_tokens]))
    return dense, tf.cast(ids.row_lengths(), tf.int32)


def decode_continuations(preprocessor, token_ids, batch: PromptBatch, max_new_tokens, stop_token_ids=None):
    """(text string[batch], num_tokens int32[batch]) of what follows each prompt.

    A row keeps at most `max_new_tokens` new tokens and stops at the first
    end-of-text (or other stop id); the preprocessor's
    `generate_postprocess` turns what is kept into text.

    Args:
        preprocessor: the run's `LanguageModelPreprocessor`.
        token_ids: int[batch, length] after decoding `batch`.
        batch: the `PromptBatch` that decoding filled.
        max_new_tokens: the most new tokens a row keeps.
        stop_token_ids: ids that end a row (default: end-of-text).

    Example:
        text, num_tokens = decode_continuations(preprocessor, out["token_ids"], batch, 50)
    """
    stop_token_ids = stop_token_ids or (preprocessor.tokenizer.eot_id,)
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    positions = tf.range(tf.shape(token_ids)[1])[None, :]
    keep = tf.logical_and(
        mask_after_stop(token_ids, batch.prompt_mask, stop_token_ids),
        positions < (batch.lengths + max_new_tokens)[:, None],
    )
    new = tf.logical_and(keep, tf.logical_not(batch.prompt_mask))
    for stop in stop_token_ids:
        new = tf.logical_and(new, tf.not_equal(token_ids, stop))
    num_tokens = tf.reduce_sum(tf.cast(new, tf.int32), axis=-1)
    return preprocessor.generate_postprocess(token_ids, keep, batch.prompt_mask), num_tokens
