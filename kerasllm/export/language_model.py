"""The servable language model: a `tf.Module` whose functions take and
return strings, with the tokenizer, the weights and the decoding loop inside.

Signatures (all inputs but the first have defaults, so TF Serving requests
and Python callers may leave them out):
- `serving_default`: prompts string[batch], max_new_tokens (100, at most half
  the context), temperature
  (0 = greedy), top_k (0 = off), top_p (1 = off), seed (-1 = random)
  -> text string[batch], num_tokens int32[batch].
- `generate_ids`: token_ids int32[batch, None] (each row padded after its
  num_tokens ids; lead a row with the end-of-text id to start a document, as
  `serving_default` does), num_tokens int32[batch], max_new_tokens, and the
  sampling inputs of `serving_default` -> token_ids int32[batch,
  max_new_tokens] (the new ids, padded after a row's end with an id `detokenize` drops),
  num_tokens int32[batch] (fewer than asked: the row reached end-of-text).
  Nothing is cut: a row's ids plus max_new_tokens must fit the context. A
  client streams text by calling it again on the ids so far (positions and
  seed keep every draw the same as one call's) and decoding them with
  `detokenize`; `kerasllm generate` does.
- `beam_search`: prompts, max_new_tokens -> text, num_tokens, with the beam
  width chosen at export time.
- `score`: texts -> log_prob, num_tokens, perplexity.
- `tokenize`: texts -> token_ids (padded with an id `detokenize` drops), num_tokens.
- `detokenize`: token_ids -> text (padding and end-of-text ids drop out).

The limit: one request generates at most context - 1 new tokens
(`max_new_tokens` in kerasllm.json; the functions' docstrings say it too),
and `serving_default` and `beam_search` cut each prompt from the left to its
last context - max_new_tokens tokens (end-of-text start included).

Invalid requests fail inside the graph with an InvalidArgument error that
says which input is wrong and what is allowed.

Every string <-> id step is the run's `LanguageModelPreprocessor`'s.

Example:
    module = LanguageModelModule(model, LanguageModelPreprocessor(tokenizer), beams=4)
    module.generate(tf.constant(["ROMEO:"]), max_new_tokens=tf.constant(50))
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.export.checks import after, nonempty
from kerasllm.inference.beam_search import BeamSearch
from kerasllm.inference.generate import UNBOUNDED_NEW_TOKENS, default_new_tokens
from kerasllm.inference.prompts import decode_continuations, new_token_ids
from kerasllm.inference.sampling import RequestSampler
from kerasllm.inference.scoring import perplexity, sequence_log_probs
from kerasllm.models import max_context


_STRINGS = tf.TensorSpec([None], tf.string)


def _scalar(dtype, name):
    return tf.TensorSpec([], dtype, name=name)


class LanguageModelModule(tf.Module):
    """A trained language model and its preprocessor as string-in,
    string-out `tf.function`s, ready for `tf.saved_model.save` (the module
    docstring lists the signatures and their inputs).

    Args:
        model: a `GPTCausalLM` or `LSTMCausalLM` with trained weights.
        preprocessor: the run's `LanguageModelPreprocessor`; its tokenizer's
            tables travel in the SavedModel.
        beams: the beam width of the `beam_search` signature.

    Example:
        from kerasllm.loaded_run import load_run

        lm = load_run("runs/smoke")
        module = LanguageModelModule(lm.model, lm.preprocessor, beams=4)
        out = module.generate(tf.constant(["ROMEO:"]), max_new_tokens=tf.constant(20),
                              temperature=tf.constant(0.0))
        out["text"], out["num_tokens"]
        # `kerasllm export` (export_run) saves it for TF Serving with write_version.
    """

    def __init__(self, model, preprocessor, beams: int = 4):
        super().__init__(name="kerasllm_language_model")
        self._model = model
        self._preprocessor = preprocessor
        self._tokenizer = tokenizer = preprocessor.tokenizer
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

        def generate_ids(
            token_ids,
            num_tokens,
            max_new_tokens=default_new,
            temperature=tf.constant(1.0),
            top_k=tf.constant(0),
            top_p=tf.constant(1.0),
            seed=tf.constant(-1),
        ):
            return self._generate_ids(token_ids, num_tokens, max_new_tokens, temperature, top_k, top_p, seed)

        def beam_search(prompts, max_new_tokens=default_new):
            return self._beam_search(prompts, max_new_tokens)

        limit = (f"At most {self.max_new_tokens} new tokens per call (the model's context is {self.context} "
                 "tokens); a prompt is cut from the left to its last context - max_new_tokens tokens."
                 if self.context else f"At most {self.max_new_tokens} new tokens per call.")
        generate.__doc__ = f"Continuations of `prompts`. {limit}"
        beam_search.__doc__ = f"Beam-search continuations of `prompts`. {limit}"
        generate_ids.__doc__ = (f"New ids after each row of `token_ids`; a row's ids plus max_new_tokens must fit "
                                f"the context ({self.context}).")

        sampling_inputs = [
            _scalar(tf.int32, "max_new_tokens"),
            _scalar(tf.float32, "temperature"),
            _scalar(tf.int32, "top_k"),
            _scalar(tf.float32, "top_p"),
            _scalar(tf.int32, "seed"),
        ]
        # Written with explicit TF control flow: AutoGraph would only spend
        # seconds rewriting the source of everything these call.
        self.generate = tf.function(
            generate, autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="prompts"), *sampling_inputs]
        )
        self.generate_ids = tf.function(
            generate_ids,
            autograph=False,
            input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids"),
                             tf.TensorSpec([None], tf.int32, name="num_tokens"), *sampling_inputs],
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
        """The functions a SavedModel serves, by signature name.

        Example:
            sorted(module.signatures())
            # ['beam_search', 'detokenize', 'generate_ids', 'score', 'serving_default', 'tokenize']
        """
        return {
            "serving_default": self.generate,
            "generate_ids": self.generate_ids,
            "beam_search": self.beam_search,
            "score": self.score,
            "tokenize": self.tokenize,
            "detokenize": self.detokenize,
        }

    def meta(self) -> dict:
        """What a client needs besides the functions (kerasllm.json): the
        context, the most new tokens one call makes, the beam width and the
        end-of-text id and the start id (rows of `generate_ids` start with
        it: the end-of-text id but for some pretrained families)."""
        return {"context": self.context, "max_new_tokens": self.max_new_tokens, "beams": self.beams,
                "eot_id": self._tokenizer.eot_id, "start_id": self._tokenizer.start_id}

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
        batch = self._preprocessor.generate_preprocess(prompts, max_new_tokens, self.context)
        self._model.sampler = sampler
        out = self._model.generate_step(batch.inputs(), stop_token_ids=(self._tokenizer.eot_id,))
        text, num_tokens = decode_continuations(self._preprocessor, out["token_ids"], batch, max_new_tokens)
        return {"text": text, "num_tokens": num_tokens}

    def _request_sampler(self, temperature, top_k, top_p, seed):
        checks = [
            tf.debugging.assert_greater_equal(temperature, 0.0, message="temperature must be >= 0 (0 = greedy)"),
            tf.debugging.assert_greater_equal(top_k, 0, message="top_k must be >= 0 (0 = no top-k filter)"),
            tf.debugging.assert_greater(top_p, 0.0, message="top_p must be in (0, 1] (1 = no nucleus filter)"),
            tf.debugging.assert_less_equal(top_p, 1.0, message="top_p must be in (0, 1] (1 = no nucleus filter)"),
        ]
        with tf.control_dependencies(checks):
            seed = tf.where(seed >= 0, seed, tf.random.uniform([], 0, tf.int32.max, dtype=tf.int32))
        return RequestSampler(temperature, top_k, top_p, seed)

    def _generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        return self._decode(prompts, max_new_tokens, self._request_sampler(temperature, top_k, top_p, seed))

    def _generate_ids(self, token_ids, num_tokens, max_new_tokens, temperature, top_k, top_p, seed):
        checks = [
            tf.debugging.assert_positive(tf.size(num_tokens), message="num_tokens: empty batch; send at least one row"),
            *self._check_new_tokens(max_new_tokens),
            tf.debugging.assert_equal(tf.shape(num_tokens)[0], tf.shape(token_ids)[0],
                                      message="num_tokens must have one entry per row of token_ids"),
            tf.debugging.assert_greater_equal(num_tokens, 1, message="num_tokens must be at least 1 (a row needs an id "
                                              "to continue from; lead it with the end-of-text id)"),
            tf.debugging.assert_less_equal(num_tokens, tf.shape(token_ids)[1],
                                           message="num_tokens must be at most the width of token_ids"),
        ]
        if self.context is not None:
            checks.append(tf.debugging.assert_less_equal(
                tf.reduce_max(num_tokens) + max_new_tokens, self.context,
                message=f"num_tokens + max_new_tokens must be at most the model context, {self.context}"))
        token_ids = after(checks, token_ids)
        ids = tf.RaggedTensor.from_tensor(token_ids, lengths=num_tokens)
        batch = self._preprocessor.prompt_batch(ids, max_new_tokens, self.context)
        self._model.sampler = self._request_sampler(temperature, top_k, top_p, seed)
        stop = (self._tokenizer.eot_id,)
        out = self._model.generate_step(batch.inputs(), stop_token_ids=stop)
        new, count = new_token_ids(out["token_ids"], batch, max_new_tokens, self._tokenizer.fill_id, stop)
        return {"token_ids": new, "num_tokens": count}

    def _beam_search(self, prompts, max_new_tokens):
        return self._decode(prompts, max_new_tokens, BeamSearch(num_beams=self.beams))

    def _score(self, texts):
        texts = after([nonempty(texts, "texts")], texts)
        tokens = self._preprocessor.with_start_token(texts)
        log_prob, num_tokens = sequence_log_probs(self._model, tokens, self._tokenizer.pad_id, self.context)
        return {"log_prob": log_prob, "num_tokens": num_tokens, "perplexity": perplexity(log_prob, num_tokens)}

    def _tokenize(self, texts):
        return self._preprocessor.texts_to_ids(texts)

    def _detokenize(self, token_ids):
        return {"text": self._preprocessor.ids_to_texts(token_ids)}
