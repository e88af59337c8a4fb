"""Strings <-> the padded id batches that cached decoding works on.

Pure TensorFlow, so the same code runs inside an exported SavedModel and
in-process: `encode_prompts` before the decoding loop, `decode_continuations`
after it. Every prompt starts with the end-of-text token (how the model saw
document starts in training, so an empty prompt works) and is cut from the
left when it and `max_new_tokens` would overflow the context.

Example:
    batch = encode_prompts(tokenizer, tf.constant(["ROMEO:"]), 50, context=128)
    ids = model.generate(batch.inputs(), stop_token_ids=(tokenizer.eot_id,))["token_ids"]
    text, num_tokens = decode_continuations(tokenizer, ids, batch, 50)
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from kerasllm.models.decoding import mask_after_stop


class PromptBatch(NamedTuple):
    token_ids: tf.Tensor  # int32[batch, longest prompt + max_new_tokens], pad after each prompt
    prompt_mask: tf.Tensor  # bool, True on prompt tokens
    lengths: tf.Tensor  # int32[batch], prompt tokens kept (end-of-text included)
    full_lengths: tf.Tensor  # int32[batch], before cutting to the context

    def inputs(self) -> dict:
        return {"token_ids": self.token_ids, "padding_mask": self.prompt_mask}


def with_start_token(tokenizer, texts) -> tf.RaggedTensor:
    """Ragged ids of `texts`, each row led by the end-of-text token."""
    ids = tokenizer.tokenize(texts)
    start = tf.fill([tf.shape(texts)[0], 1], tf.constant(tokenizer.eot_id, tf.int32))
    return tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)


def keep_last(ids: tf.RaggedTensor, keep) -> tf.RaggedTensor:
    """The last `keep` ids of each row (all of a shorter row)."""
    starts = tf.maximum(ids.row_limits() - tf.cast(keep, ids.row_splits.dtype), ids.row_starts())
    return tf.gather(ids.values, tf.ragged.range(starts, ids.row_limits()))


def encode_prompts(tokenizer, texts, max_new_tokens, context: int | None) -> PromptBatch:
    return prompt_batch(with_start_token(tokenizer, texts), tokenizer.pad_id, max_new_tokens, context)


def prompt_batch(ids: tf.RaggedTensor, pad_id: int, max_new_tokens, context: int | None) -> PromptBatch:
    """Ragged prompt ids -> the padded batch decoding fills, each row cut
    to its last `context - max_new_tokens` ids."""
    full_lengths = tf.cast(ids.row_lengths(), tf.int32)
    if context is not None:
        ids = keep_last(ids, context - max_new_tokens)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    token_ids = tf.pad(ids.to_tensor(default_value=pad_id), [[0, 0], [0, max_new_tokens]], constant_values=pad_id)
    mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1])
    return PromptBatch(token_ids, mask, lengths, full_lengths)


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


def decode_continuations(tokenizer, token_ids, batch: PromptBatch, max_new_tokens, stop_token_ids=None):
    """(text string[batch], num_tokens int32[batch]) of what follows each prompt.

    A row keeps at most `max_new_tokens` new tokens and stops at the first
    end-of-text (or other stop id). Prompt and continuation are detokenized
    together, because a subword tokenizer joins pieces across the boundary,
    and the prompt's own text is then cut off the front.
    """
    stop_token_ids = stop_token_ids or (tokenizer.eot_id,)
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
    full = tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))
    prompt = tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, batch.prompt_mask))
    cut = tf.strings.length(prompt)
    starts_with_prompt = tf.equal(tf.strings.substr(full, tf.zeros_like(cut), cut), prompt)
    rest = tf.strings.substr(full, cut, tf.maximum(tf.strings.length(full) - cut, 0))
    return tf.where(starts_with_prompt, rest, full), num_tokens
