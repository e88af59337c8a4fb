"""Beam search with finished hypotheses and a length penalty.

keras-hub's `BeamSampler` keeps extending a beam after its end-of-text token
(the tokens nobody reads still lower its score) and ranks by raw
log-probability, which favours short outputs. `BeamSearch` reuses
keras-hub's sampler loop and cache handling but:
- freezes a beam once it emits a stop token: its score stays as it was and
  it keeps its slot, competing with the live beams;
- ranks by log_prob / ((5 + length) / 6) ** length_penalty (the GNMT length
  normalisation; 0 = raw log-probability), both while searching and when
  picking the answer;
- stops a row once its best finished beam beats every live beam's best
  possible score;
- takes the width and the penalty as Python numbers or as tensors, so an
  exported model can take them with each request.
With one beam it is greedy decoding.

Example:
    model.sampler = BeamSearch(num_beams=4, length_penalty=0.6)
    model.generate(inputs, stop_token_ids=(eot_id,))
"""

from __future__ import annotations

import keras_hub
import tensorflow as tf
from keras import ops

_NEVER = -1e9  # a score no real hypothesis reaches (-inf would make NaNs)


def length_normaliser(lengths, length_penalty):
    """GNMT's ((5 + length) / 6) ** alpha, per hypothesis: a beam's score is
    its log-probability divided by this.

    Args:
        lengths: int tensor of generated lengths (the stop token included).
        length_penalty: alpha, a float or float32 scalar tensor (0: 1.0 for
            every length, i.e. raw log-probability).

    Returns:
        float32 tensor shaped like `lengths`.

    Example:
        length_normaliser(tf.constant([1, 7]), 1.0)  # [1.0, 2.0]
    """
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, length_penalty)


class BeamSearch(keras_hub.samplers.Sampler):
    """Beam search that freezes finished beams and ranks by length-normalised
    log-probability (see the module docstring). Returns, per input row, the
    best beam's token ids, as keras-hub's samplers do.

    Args:
        num_beams: beam width, a Python int or an int32 scalar tensor (an
            exported model takes it per request); 1 is greedy decoding.
        length_penalty: alpha of `length_normaliser`, a float or a float32
            scalar tensor; 0 ranks by raw log-probability.

    Example:
        translator.sampler = BeamSearch(num_beams=4, length_penalty=0.6)
        out = translator.generate(inputs, stop_token_ids=(target_tokenizer.eot_id,))
    """

    def __init__(self, num_beams=4, length_penalty=0.0):
        super().__init__()
        self.num_beams = num_beams
        self.length_penalty = length_penalty

    def __call__(self, next, prompt, cache=None, index=0, mask=None, stop_token_ids=None, hidden_states=None,
                 model=None):
        beams = tf.convert_to_tensor(self.num_beams, tf.int32)
        alpha = tf.cast(self.length_penalty, tf.float32)
        batch, max_length = tf.shape(prompt)[0], tf.shape(prompt)[1]
        index = tf.cast(index, tf.int32)
        mask = tf.zeros_like(prompt, tf.bool) if mask is None else tf.cast(mask, tf.bool)
        stops = tf.constant(list(stop_token_ids or ()), prompt.dtype)
        # Rows become (batch * beams) rows, the beams of one input side by side.
        prompt, mask = tf.repeat(prompt, beams, axis=0), tf.repeat(mask, beams, axis=0)
        cache = tf.nest.map_structure(lambda x: tf.repeat(x, beams, axis=0), () if cache is None else cache)
        flat = batch * beams
        # All beams start as copies of one; the copies must not be chosen twice.
        log_probs = tf.where(tf.range(flat) % beams == 0, 0.0, _NEVER)
        done = tf.zeros([flat], tf.bool)
        lengths = tf.zeros([flat], tf.int32)  # generated tokens, the stop token included

        def is_stop(tokens):
            return tf.reduce_any(tokens[:, None] == stops[None, :], axis=-1)

        def rows_finished(log_probs, done, lengths, index):
            """Every beam finished, or the best finished one can't be beaten."""
            score = tf.reshape(log_probs / length_normaliser(lengths, alpha), [-1, beams])
            best_done = tf.reduce_max(tf.where(tf.reshape(done, [-1, beams]), score, 2 * _NEVER), axis=1)
            # A live beam's log-prob only falls; its normaliser grows at most to the longest it can get.
            reachable = lengths + (max_length - index)
            bound = tf.reshape(log_probs / length_normaliser(reachable, alpha), [-1, beams])
            best_live = tf.reduce_max(tf.where(tf.reshape(done, [-1, beams]), 2 * _NEVER, bound), axis=1)
            return best_done >= best_live

        def cond(prompt, cache, index, mask, log_probs, done, lengths):
            if stop_token_ids is None:
                return tf.constant(True)
            return tf.logical_not(tf.reduce_all(rows_finished(log_probs, done, lengths, index)))

        def body(*state):
            # The beam gathers lose static shapes; the loop needs them back.
            return tf.nest.map_structure(lambda new, old: tf.ensure_shape(new, old.shape), step(*state), state)

        def step(prompt, cache, index, mask, log_probs, done, lengths):
            logits, _, cache = next(prompt, cache, index)
            token_log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
            vocabulary = tf.shape(token_log_probs)[-1]
            # A prompt position (longer prompts in the batch) or a finished
            # beam has exactly one continuation, which costs nothing.
            forced = mask[:, index]
            fixed = done | forced
            fixed_token = tf.where(done, stops[0], prompt[:, index]) if stop_token_ids else prompt[:, index]
            only = tf.one_hot(fixed_token, vocabulary, on_value=0.0, off_value=_NEVER)
            step = tf.where(fixed[:, None], only, token_log_probs)
            candidates = log_probs[:, None] + step
            new_lengths = lengths + tf.cast(~fixed, tf.int32)
            ranking = candidates / length_normaliser(new_lengths, alpha)[:, None]
            _, chosen = tf.math.top_k(tf.reshape(ranking, [-1, beams * vocabulary]), k=beams)
            parent = tf.reshape(chosen // vocabulary + tf.range(batch)[:, None] * beams, [-1])
            token = tf.reshape(chosen % vocabulary, [-1])
            log_probs = tf.gather(tf.reshape(candidates, [-1]), parent * vocabulary + token)
            lengths = tf.gather(new_lengths, parent)
            token = tf.cast(token, prompt.dtype)
            done = tf.gather(done, parent) | (is_stop(token) & ~forced) if stop_token_ids else done
            prompt = tf.gather(prompt, parent)
            # keras ops, so the export can trace the update without XLA ops
            prompt = ops.slice_update(prompt, [0, index], token[:, None])
            cache = tf.nest.map_structure(lambda x: tf.gather(x, parent), cache)
            return prompt, cache, index + 1, mask, log_probs, done, lengths

        prompt, _, _, _, log_probs, done, lengths = self.run_loop(
            cond, body, loop_vars=(prompt, cache, index, mask, log_probs, done, lengths),
            maximum_iterations=max_length - index, model=model,
        )
        score = tf.reshape(log_probs / length_normaliser(lengths, alpha), [-1, beams])
        best = tf.argmax(score, axis=1, output_type=tf.int32) + tf.range(batch) * beams
        return tf.gather(prompt, best)

    def get_config(self):
        return {"num_beams": self.num_beams, "length_penalty": self.length_penalty}
