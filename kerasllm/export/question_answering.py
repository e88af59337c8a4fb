"""The servable question answerer: a `tf.Module` whose `serving_default`
takes questions and their passages and returns the answers, with the
WordPiece tokenizer (with offsets), the windowing, the encoder's weights
and the span search inside — the same graph as `kerasllm qa --run`.

Signature `serving_default`:
- `question` string[batch], `context` string[batch] (valid UTF-8, not blank)
- -> `answer` string[batch], `score` float32[batch] (start + end logit),
  `start`/`end` int64[batch] (character offsets of the answer in its
  context, end exclusive)

Example:
    module = QuestionAnsweringModule(model, QuestionAnsweringPreprocessor.for_model(tokenizer, config.model))
    module.answer(tf.constant(["Who wrote Hamlet?"]), tf.constant(["Hamlet is a tragedy by William Shakespeare."]))
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.export.checks import after, nonempty
from kerasllm.inference.qa import answer_batch


# The characters Python's str.isspace() accepts, so that the server and
# `kerasllm qa` (which strips in Python) agree on what is blank.
WHITESPACE = r"[\t-\r\x{1c}-\x{1f}\x{85}\p{Z}]"


def is_blank(texts):
    """bool[batch]: the string holds only whitespace (or nothing), whitespace
    being what Python's `str.isspace()` accepts.

    Args:
        texts: string[batch] tensor.

    Example:
        is_blank(tf.constant(["", "   ", "a "]))  # [True, True, False]
    """
    return tf.equal(tf.strings.length(tf.strings.regex_replace(texts, WHITESPACE, "")), 0)


def _valid_text(texts, name: str) -> list:
    """Checks that every string is UTF-8 and not blank."""
    return [
        tf.debugging.assert_equal(tf.reduce_any(is_blank(texts)), False,
                                  message=f"{name}: every {name} must be non-blank text"),
        # Decoding strictly fails with InvalidArgument on a malformed byte.
        tf.debugging.assert_non_negative(tf.strings.unicode_decode(texts, "UTF-8", errors="strict").flat_values,
                                         message=f"{name}: not valid UTF-8"),
    ]


class QuestionAnsweringModule(tf.Module):
    """A trained span model and its preprocessor (the WordPiece tokenizer
    with offsets, the window sizes) as one `tf.function` (`answer`, served
    as `serving_default`): questions and contexts in, answers with their
    scores and character offsets out.

    Args:
        model: a trained `SpanModel` (`model.kind: encoder`, `head: span`).
        preprocessor: the run's `QuestionAnsweringPreprocessor`.

    Example:
        from kerasllm.loaded_run import load_run

        lm = load_run("runs/tiny-qa")
        module = QuestionAnsweringModule(lm.model, lm.preprocessor)
        out = module.answer(tf.constant(["Who wrote Hamlet?"]),
                            tf.constant(["Hamlet is a tragedy by William Shakespeare."]))
        out["answer"], out["score"], out["start"], out["end"]
        # `kerasllm export` (export_run) saves it for TF Serving with write_version.
    """

    def __init__(self, model, preprocessor):
        super().__init__(name="kerasllm_question_answering")
        self._model = model
        self._preprocessor = preprocessor
        # Tracked so the SavedModel carries them.
        self.model_variables = list(model.variables)
        self.tokenizer_resources = preprocessor.tokenizer.trackables()
        # Written with explicit TF control flow: AutoGraph would only spend
        # seconds rewriting the source of everything these call.
        self.answer = tf.function(self._answer, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string, name="question"),
            tf.TensorSpec([None], tf.string, name="context"),
        ])

    def signatures(self) -> dict:
        """The functions a SavedModel serves, by signature name.

        Example:
            module.signatures()  # {'serving_default': module.answer}
        """
        return {"serving_default": self.answer}

    def _answer(self, question, context):
        checks = [
            nonempty(question, "question"),
            tf.debugging.assert_equal(tf.size(question), tf.size(context),
                                      message="question and context: send one context per question"),
            *_valid_text(question, "question"),
            *_valid_text(context, "context"),
        ]
        question, context = after(checks, question), after(checks, context)
        return answer_batch(self._model, self._preprocessor, question, context)
