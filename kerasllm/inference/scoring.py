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


def token_log_probs(model, tokens: tf.RaggedTensor, pad_id: int, context: int | None):
    """The natural-log probability of each predicted id: what
    `sequence_log_probs` sums (and `kerasllm score` prints the sums of);
    `kerasllm explain` shows them, negated, as surprisal.

    Args:
        model: a language model (token ids -> next-token logits).
        tokens: ragged int32 [batch, 1 + n], led by the start token
            (`prompts.with_start_token`).
        pad_id: the tokenizer's padding id.
        context: the model's context (windows of at most this many ids), or
            None for a model without one.

    Returns:
        (log_probs float32[batch, width], num_tokens int32[batch]): row i's
        first num_tokens[i] entries are the log-probabilities of its ids
        after the start token, in order; the rest are 0.

    Example:
        log_probs, n = token_log_probs(model, with_start_token(tok, ["To be"]), tok.pad_id, 128)
        log_probs[0, :n[0]]  # one value per token of "To be"
    """
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
    return tf.where(valid, tf.reshape(log_probs, [batch, windows * window]), 0.0), predicted


def sequence_log_probs(model, tokens: tf.RaggedTensor, pad_id: int, context: int | None):
    """tokens: ragged int32 [batch, 1 + n], led by the start token ->
    (log_prob float32[batch], num_tokens int32[batch]) over the n predicted
    ids: the sums of `token_log_probs`."""
    log_probs, predicted = token_log_probs(model, tokens, pad_id, context)
    return tf.reduce_sum(log_probs, axis=-1), predicted


def perplexity(log_prob, num_tokens):
    """exp of the mean negative log-likelihood; 1 for a text with no tokens."""
    return tf.exp(-log_prob / tf.cast(tf.maximum(num_tokens, 1), log_prob.dtype))
