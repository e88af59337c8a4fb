"""The part of cached decoding every model shares: run a keras-hub sampler
from the end of the shortest prompt, then mark what comes after a stop token.

A model supplies its cache and a `next_token(prompt, cache, index)` function
that returns (logits, hidden, cache) for position `index - 1`.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

# For `generate_step`: keras-hub traces it with tf.function's default
# AutoGraph, which rewrites the source of every function the decoding loop
# calls (a delay before a run's first sample). The loop is written with
# explicit `ops.while_loop` / `ops.cond`, so it runs as written.
no_autograph = tf.autograph.experimental.do_not_convert


def first_free_index(padding_mask):
    """Decoding starts after the shortest prompt; rows with longer prompts
    keep their own tokens where the mask is set.

    Args:
        padding_mask: bool[batch, length], true on prompt tokens.

    Example:
        first_free_index(tf.constant([[True, True, False], [True, False, False]]))  # 1
    """
    return ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))


def sample(model, inputs: dict, cache, next_token, stop_token_ids=None, hidden_states=None) -> dict:
    """Runs `model.sampler` from `first_free_index` and returns keras-hub's
    generate output: the filled `token_ids` and a `padding_mask` that is
    true up to and including each row's first stop token.

    Args:
        model: the model whose `sampler` decides each token.
        inputs: {"token_ids": int[batch, length], "padding_mask": bool}.
        cache: the model's cache after the prompt.
        next_token: (prompt, cache, index) -> (logits, hidden, cache) for
            position `index - 1`.
        stop_token_ids: ids that end a row (None: none).
        hidden_states: the prompt's hidden states (keras-hub's contrastive
            sampler reads them).

    Example:
        # the end of a model's generate_step
        return decoding.sample(self, inputs, cache, next_token, stop_token_ids, hidden)
    """
    token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
    token_ids = model.sampler(
        next=next_token,
        prompt=token_ids,
        cache=cache,
        index=first_free_index(padding_mask),
        mask=padding_mask,
        stop_token_ids=stop_token_ids,
        hidden_states=hidden_states,
        model=model,
    )
    return {"token_ids": token_ids, "padding_mask": mask_after_stop(token_ids, padding_mask, stop_token_ids)}


def mask_after_stop(token_ids, prompt_mask, stop_token_ids):
    """True for prompt and generated tokens up to and including the first stop.

    Args:
        token_ids: int[batch, length] after decoding.
        prompt_mask: bool[batch, length], true on prompt tokens (a stop id
            inside the prompt does not count).
        stop_token_ids: a sequence of ids, or None (every position is kept).

    Example:
        mask_after_stop(tf.constant([[1, 5, 2, 6]]), tf.constant([[True, False, False, False]]), (2,))
        # [[True, True, True, False]]
    """
    if stop_token_ids is None:
        return ops.ones_like(token_ids, dtype="bool")
    generated = ops.logical_not(prompt_mask)
    is_stop = ops.zeros_like(token_ids, dtype="bool")
    for stop in stop_token_ids:
        is_stop = ops.logical_or(is_stop, ops.equal(token_ids, stop))
    is_stop = ops.cast(ops.logical_and(is_stop, generated), "int32")
    stops_before = ops.cumsum(is_stop, axis=-1) - is_stop
    return ops.equal(stops_before, 0)
