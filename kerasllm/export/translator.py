"""The servable translator: a `tf.Module` whose `serving_default` takes
source sentences and returns their translations, with both tokenizers, the
weights and the decoding loop (`BeamSearch`, cached decoder) inside.

Signature `serving_default`:
- `sources` string[batch]
- optional `beams` int32 (1 = greedy; default chosen at export),
  `length_penalty` float (GNMT alpha, 0 = none), `max_length` int32
  (target tokens + 1, at most the model's `seq_len`; sources are cut to it)
- -> `translations` string[batch]

Sources and translations pass through the run's `TranslationPreprocessor`.

Example:
    module = TranslatorModule(model, TranslationPreprocessor(src_tok, tgt_tok, sequence_length=40))
    module.translate(tf.constant(["Where is the station?"]), beams=tf.constant(4))
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.export.checks import after, nonempty, within
from kerasllm.inference.beam_search import BeamSearch

MAX_BEAMS = 16


class TranslatorModule(tf.Module):
    """A trained translator and its preprocessor (both tokenizers) as one
    string-in, string-out `tf.function` (`translate`, served as
    `serving_default`).

    Args:
        model: a trained `Seq2SeqTranslator`.
        preprocessor: the run's `TranslationPreprocessor`; its
            `sequence_length` (the model's `seq_len`) is the largest
            `max_length` a request may ask for, and its default.
        beams: the default beam width of a request (1: greedy).
        length_penalty: the default GNMT length penalty of a request.

    Example:
        from kerasllm.loaded_run import load_run

        lm = load_run("runs/tiny-translator")
        module = TranslatorModule(lm.model, lm.preprocessor)
        module.translate(tf.constant(["Where is the station?"]), beams=tf.constant(1))["translations"]
        # `kerasllm export` (export_run) saves it for TF Serving with write_version.
    """

    def __init__(self, model, preprocessor, beams: int = 4, length_penalty: float = 0.6):
        super().__init__(name="kerasllm_translator")
        self._model = model
        self._preprocessor = preprocessor
        source_tokenizer, target_tokenizer = preprocessor.source_tokenizer, preprocessor.target_tokenizer
        # Tracked so the SavedModel carries them.
        self.model_variables = list(model.variables)
        self.tokenizer_resources = source_tokenizer.trackables() + (
            [] if target_tokenizer is source_tokenizer else target_tokenizer.trackables()
        )
        self.max_length = max_length = preprocessor.sequence_length
        self.beams = beams
        self.length_penalty = length_penalty

        def translate(sources, beams=tf.constant(beams), length_penalty=tf.constant(float(length_penalty)),
                      max_length=tf.constant(max_length)):
            return self._translate(sources, beams, length_penalty, max_length)

        # Written with explicit TF control flow: AutoGraph would only spend
        # seconds rewriting the source of everything these call.
        self.translate = tf.function(translate, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name="sources"),
            tf.TensorSpec([], tf.int32, name="beams"),
            tf.TensorSpec([], tf.float32, name="length_penalty"),
            tf.TensorSpec([], tf.int32, name="max_length"),
        ])

    def signatures(self) -> dict:
        """The functions a SavedModel serves, by signature name.

        Example:
            module.signatures()  # {'serving_default': module.translate}
        """
        return {"serving_default": self.translate}

    def _translate(self, sources, beams, length_penalty, max_length):
        sources = after([
            nonempty(sources, "sources"),
            *within(beams, 1, MAX_BEAMS, f"beams must be in [1, {MAX_BEAMS}] (1 = greedy)"),
            tf.debugging.assert_greater_equal(length_penalty, 0.0, message="length_penalty must be >= 0 (0 = none)"),
            *within(max_length, 2, self.max_length,
                    f"max_length must be in [2, {self.max_length}]: the model's seq_len is {self.max_length}"),
        ], sources)
        inputs = self._preprocessor.generate_preprocess(sources, max_length)
        self._model.sampler = BeamSearch(num_beams=beams, length_penalty=length_penalty)
        out = self._model.generate_step(inputs, stop_token_ids=(self._preprocessor.target_tokenizer.eot_id,))
        text = self._preprocessor.generate_postprocess(out["decoder_token_ids"], out["decoder_padding_mask"])
        return {"translations": text}
