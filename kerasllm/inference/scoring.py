"""Log-probability of texts under a language model (n-best rescoring,
perplexity of a file).

A text is scored from a fresh document start: ids are predicted after the
end-of-text token, one after another. A text longer than the model's context
is scored in consecutive windows, each window conditioned only on itself,
which is how the validation loss sees packed blocks in training.

Example:
    tokens = LanguageModelPreprocessor(tok).with_start_token(texts)  # the ids to score
    log_prob, num_tokens = sequence_log_probs(model, tokens, tok.pad_id, 128)
    perplexity = exp(-log_prob / num_tokens)
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.inference.chunks import map_in_chunks

TOKENS_PER_CALL = 8192


def sequence_log_probs(model, tokens: tf.RaggedTensor, pad_id: int, context: int | None):
    """tokens: ragged int32 [batch, 1 + n], led by the start token ->
    (log_prob float32[batch], num_tokens int32[batch]) over the n predicted ids."""
    predicted = tf.cast(tokens.row_lengths(), tf.int32) - 1
    longest = tf.maximum(tf.reduce_max(predicted), 1)
    window = longest if context is None else tf.minimum(longest, context)
    windows = (longest + window - 1) // window
    batch = tf.shape(predicted)[0]
    dense = tokens.to_tensor(default_value=pad_id)
    dense = tf.pad(dense, [[0, 0], [0, windows * window + 1 - tf.shape(dense)[1]]], constant_values=pad_id)
    inputs = tf.reshape(dense[:, :-1], [batch * windows, window])
    targets = tf.reshape(dense[:, 1:], [batch * windows, window])

    def score_rows(rows):
        logits = tf.cast(model(rows["inputs"], training=False), tf.float32)
        return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=rows["targets"], logits=logits)

    # Long texts (or many windows) run TOKENS_PER_CALL tokens at a time: the
    # logits are tokens x vocabulary floats.
    log_probs = map_in_chunks(score_rows, {"inputs": inputs, "targets": targets}, TOKENS_PER_CALL // window,
                              fn_output_signature=tf.TensorSpec([None, None], tf.float32))
    valid = tf.sequence_mask(predicted, windows * window)
    log_probs = tf.where(valid, tf.reshape(log_probs, [batch, windows * window]), 0.0)
    return tf.reduce_sum(log_probs, axis=-1), predicted


def perplexity(log_prob, num_tokens):
    """exp of the mean negative log-likelihood; 1 for a text with no tokens."""
    return tf.exp(-log_prob / tf.cast(tf.maximum(num_tokens, 1), log_prob.dtype))
