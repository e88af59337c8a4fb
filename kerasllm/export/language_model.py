"""The servable language model: a `tf.Module` whose functions take and
return strings, with the tokenizer, the weights and the decoding loop inside.

Signatures (all inputs but the first have defaults, so TF Serving requests
and Python callers may leave them out):
- `serving_default`: prompts string[batch], max_new_tokens (100, at most half
  the context), temperature
  (0 = greedy), top_k (0 = off), top_p (1 = off), seed (-1 = random)
  -> text string[batch], num_tokens int32[batch].
- `beam_search`: prompts, max_new_tokens -> text, num_tokens, with the beam
  width chosen at export time.
- `score`: texts -> log_prob, num_tokens, perplexity.
- `tokenize`: texts -> token_ids (padded with `pad_id`), num_tokens.
- `detokenize`: token_ids -> text (padding and end-of-text ids drop out).

Invalid requests fail inside the graph with an InvalidArgument error that
says which input is wrong and what is allowed.

Example:
    module = LanguageModelModule(model, tokenizer, beams=4)
    module.generate(tf.constant(["ROMEO:"]), max_new_tokens=tf.constant(50))
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.export.checks import after, nonempty
from kerasllm.inference.beam_search import BeamSearch
from kerasllm.inference.generate import UNBOUNDED_NEW_TOKENS, default_new_tokens
from kerasllm.inference.prompts import decode_continuations, encode_prompts, with_start_token
from kerasllm.inference.sampling import RequestSampler
from kerasllm.inference.scoring import perplexity, sequence_log_probs
from kerasllm.models import max_context


_STRINGS = tf.TensorSpec([None], tf.string)


def _scalar(dtype, name):
    return tf.TensorSpec([], dtype, name=name)


class LanguageModelModule(tf.Module):
    def __init__(self, model, tokenizer, beams: int = 4):
        super().__init__(name="kerasllm_language_model")
        self._model = model
        self._tokenizer = tokenizer
        # Tracked so the SavedModel carries them.
        self.model_variables = list(model.variables)
        self.tokenizer_resources = tokenizer.trackables()
        self.context = max_context(model)
        self.max_new_tokens = UNBOUNDED_NEW_TOKENS if self.context is None else self.context - 1
        self.beams = beams
        default_new = tf.constant(default_new_tokens(self.context))

        def generate(
            prompts,
            max_new_tokens=default_new,
            temperature=tf.constant(1.0),
            top_k=tf.constant(0),
            top_p=tf.constant(1.0),
            seed=tf.constant(-1),
        ):
            return self._generate(prompts, max_new_tokens, temperature, top_k, top_p, seed)

        def beam_search(prompts, max_new_tokens=default_new):
            return self._beam_search(prompts, max_new_tokens)

        # Written with explicit TF control flow: AutoGraph would only spend
        # seconds rewriting the source of everything these call.
        self.generate = tf.function(
            generate,
            autograph=False,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="prompts"),
                _scalar(tf.int32, "max_new_tokens"),
                _scalar(tf.float32, "temperature"),
                _scalar(tf.int32, "top_k"),
                _scalar(tf.float32, "top_p"),
                _scalar(tf.int32, "seed"),
            ],
        )
        self.beam_search = tf.function(
            beam_search,
            autograph=False,
            input_signature=[tf.TensorSpec([None], tf.string, name="prompts"), _scalar(tf.int32, "max_new_tokens")],
        )
        self.score = tf.function(self._score, autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        self.tokenize = tf.function(self._tokenize, autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        self.detokenize = tf.function(
            self._detokenize, autograph=False, input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")]
        )

    def signatures(self) -> dict:
        return {
            "serving_default": self.generate,
            "beam_search": self.beam_search,
            "score": self.score,
            "tokenize": self.tokenize,
            "detokenize": self.detokenize,
        }

    # -- checks ---------------------------------------------------------------

    def _check_new_tokens(self, max_new_tokens):
        limit = self.max_new_tokens
        where = f": the model context is {self.context} tokens" if self.context else ""
        return [
            tf.debugging.assert_greater_equal(max_new_tokens, 1, message="max_new_tokens must be at least 1"),
            tf.debugging.assert_less_equal(
                max_new_tokens, limit, message=f"max_new_tokens must be at most {limit}{where}"
            ),
        ]

    # -- signatures -----------------------------------------------------------

    def _decode(self, prompts, max_new_tokens, sampler):
        prompts = after([nonempty(prompts, "prompts"), *self._check_new_tokens(max_new_tokens)], prompts)
        batch = encode_prompts(self._tokenizer, prompts, max_new_tokens, self.context)
        self._model.sampler = sampler
        out = self._model.generate_step(batch.inputs(), stop_token_ids=(self._tokenizer.eot_id,))
        text, num_tokens = decode_continuations(self._tokenizer, out["token_ids"], batch, max_new_tokens)
        return {"text": text, "num_tokens": num_tokens}

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        checks = [
            tf.debugging.assert_greater_equal(temperature, 0.0, message="temperature must be >= 0 (0 = greedy)"),
            tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0 (0 = no top-k filter)"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1] (1 = no nucleus filter)"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1] (1 = no nucleus filter)"),
        ]
        with tf.control_dependencies(checks):
            seed = tf.where(seed >= 0, seed, tf.random.uniform([], 0, tf.int32.max, dtype=tf.int32))
        return self._decode(prompts, max_new_tokens, RequestSampler(temperature, top_k, top_p, seed))

    def _beam_search(self, prompts, max_new_tokens):
        return self._decode(prompts, max_new_tokens, BeamSearch(num_beams=self.beams))

    def _score(self, texts):
        texts = after([nonempty(texts, "texts")], texts)
        tokens = with_start_token(self._tokenizer, texts)
        log_prob, num_tokens = sequence_log_probs(self._model, tokens, self._tokenizer.pad_id, self.context)
        return {"log_prob": log_prob, "num_tokens": num_tokens, "perplexity": perplexity(log_prob, num_tokens)}

    def _tokenize(self, texts):
        ids = self._tokenizer._tokenize(texts)
        return {
            "token_ids": ids.to_tensor(default_value=self._tokenizer.pad_id),
            "num_tokens": tf.cast(ids.row_lengths(), tf.int32),
        }

    def _detokenize(self, token_ids):
        return {"text": self._tokenizer._detokenize(token_ids)}
