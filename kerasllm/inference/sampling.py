"""Choosing the next token.

`make_sampler` picks one of keras-hub's samplers (or our `BeamSearch`) for
in-process generation (settings are Python values, fixed per call). `RequestSampler` is for the
exported graph, where temperature, top-k, top-p and the seed arrive as
tensors with each request: keras-hub's samplers take them as constructor
constants and draw from a stateful seed generator, so a server could neither
vary them per request nor replay a request exactly. It reuses keras-hub's
decoding loop (`Sampler.__call__`) and only replaces the choice of token.

Example:
    model.sampler = make_sampler(temperature=0.8, top_p=0.9, seed=1)
    model.sampler = RequestSampler(temperature_t, top_k_t, top_p_t, seed_t)
"""

from __future__ import annotations

import keras_hub
import tensorflow as tf


def make_sampler(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0, seed: int | None = None, beams: int = 1,
                 length_penalty: float = 0.0):
    """The sampler for in-process generation: beam search (beams > 1, see
    `BeamSearch`), greedy (temperature 0), top-p (< 1), top-k (> 0), else
    random sampling at `temperature`, in that order of precedence.

    Args:
        temperature: divides the logits before sampling; 0 or less means
            greedy decoding.
        top_k: keep the `top_k` most likely tokens (0: all); with `top_p`
            < 1 it bounds the top-p candidates.
        top_p: keep the smallest set of tokens whose probability reaches
            `top_p` (1.0: off).
        seed: seed of the sampler's random draws (None: unseeded).
        beams: beam width; above 1 the other settings but
            `length_penalty` are ignored.
        length_penalty: GNMT length normalisation exponent for beam search
            (0: rank by raw log-probability).

    Returns:
        A `keras_hub.samplers.Sampler`.

    Example:
        model.sampler = make_sampler(temperature=0.8, top_p=0.9, seed=1)   # TopPSampler
        model.sampler = make_sampler(temperature=0.0)                      # GreedySampler
        model.sampler = make_sampler(beams=4, length_penalty=0.6)          # BeamSearch
    """
    samplers = keras_hub.samplers
    if beams > 1:
        from kerasllm.inference.beam_search import BeamSearch

        return BeamSearch(num_beams=beams, length_penalty=length_penalty)
    if temperature <= 0:
        return samplers.GreedySampler()
    if top_p < 1.0:
        return samplers.TopPSampler(p=top_p, k=top_k or None, seed=seed, temperature=temperature)
    if top_k > 0:
        return samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    return samplers.RandomSampler(seed=seed, temperature=temperature)


def use_sampler(model, setting, make) -> None:
    """Gives `model` the sampler `make()` builds for `setting` (a hashable
    tuple of its settings). keras-hub traces the sampler into the model's
    generate function, so a new sampler means tracing again (seconds per
    call, e.g. for every epoch's samples); while the model still holds the
    sampler made for an equal setting, that function is kept. A setting of
    None (a seeded sampler, which must restart its seed) always makes a new one.

    Args:
        model: a keras-hub `CausalLM` or `Seq2SeqLM`.
        setting: a hashable tuple naming the sampler's settings, or None.
        make: a function of no arguments that returns the sampler.

    Example:
        use_sampler(model, (0.8, 0, 0.9), lambda: make_sampler(temperature=0.8, top_p=0.9))
        model.generate(inputs, stop_token_ids=(tokenizer.eot_id,))
    """
    if (setting is None or model.generate_function is None
            or getattr(model, "_kerasllm_decoding", None) != (setting, id(model.sampler))):
        model.sampler = make()
        model.generate_function = None  # the sampler is part of the traced function
        model._kerasllm_decoding = (setting, id(model.sampler))


class RequestSampler(keras_hub.samplers.Sampler):
    """Greedy when `temperature` is 0; otherwise keeps the `top_k` most likely
    tokens (0: all), then the smallest set of those whose probability reaches
    `top_p`, and draws with a stateless RNG keyed by (`seed`, position), so a
    request with the same seed always gets the same text.

    Args:
        temperature: float32 scalar tensor; 0 means greedy.
        top_k: int32 scalar tensor; 0 keeps every token.
        top_p: float32 scalar tensor; 1.0 keeps every token.
        seed: int scalar tensor, with the position the key of each draw.

    Example:
        # inside an exported signature, with the request's tensors
        model.sampler = RequestSampler(temperature, top_k, top_p, seed)
        out = model.generate_step(inputs, stop_token_ids=(eot_id,))
    """

    def __init__(self, temperature, top_k, top_p, seed):
        super().__init__(temperature=temperature)
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed
        self._index = None

    def __call__(self, next, prompt, *args, **kwargs):
        def next_with_position(prompt, cache, index):
            self._index = index  # read by get_next_token in the same loop step
            return next(prompt, cache, index)

        return super().__call__(next_with_position, prompt, *args, **kwargs)

    def compute_probabilities(self, logits):
        """keras-hub's hook: float32 softmax of `logits / temperature` (of
        the logits as they are when greedy)."""
        logits = tf.cast(logits, tf.float32)
        scale = tf.where(self.temperature > 0, self.temperature, 1.0)
        return tf.nn.softmax(logits / scale)

    def get_next_token(self, probabilities):
        """keras-hub's hook: int32[batch] ids, argmax when `temperature` is 0,
        else a draw from the top-k/top-p candidates keyed by (seed, position)."""
        def draw():
            vocabulary = tf.shape(probabilities)[-1]
            k = tf.where(self.top_k > 0, tf.minimum(self.top_k, vocabulary), vocabulary)
            probs, ids = tf.math.top_k(probabilities, k=k)
            mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
            logits = tf.where(mass_before < self.top_p, tf.math.log(probs), float("-inf"))
            seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(self._index, tf.int64)])
            choice = tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)
            return tf.gather(ids, choice[:, 0], batch_dims=1)

        def greedy():
            return tf.argmax(probabilities, axis=-1, output_type=tf.int32)

        return tf.cond(self.temperature > 0, draw, greedy)
