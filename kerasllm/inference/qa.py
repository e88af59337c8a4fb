"""Answering questions about passages with a span model, in-process.

`answer_fn` is one traced TensorFlow function from strings to answers: the
run's `QuestionAnsweringPreprocessor` reads questions and passages into
windows, the model scores them, the preprocessor picks the best span over
each question's windows and cuts the answer out of the passage. It is
shared by `kerasllm qa --run`, `kerasllm evaluate` and the training
samples; the exported model runs the same graph (`answer_batch`).

Example:
    answer = answer_fn(model, tokenizer, config.model)
    answer(["Who wrote Hamlet?"], ["Hamlet is a tragedy by William Shakespeare."])
    # {"answer": [b"William Shakespeare"], "score": [...], "start": [23], "end": [42]}
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import tensorflow as tf

from kerasllm.data.preprocessors.question_answering import QuestionAnsweringPreprocessor
from kerasllm.data.qa_data import window_length
from kerasllm.errors import UserError
from kerasllm.inference.chunks import map_in_chunks


WINDOW_CHUNK = 64  # windows per model call: bounds memory whatever the passages' length


def answer_batch(model, preprocessor, questions, contexts) -> dict:
    """The answering graph (also the exported model's): windows, model, best
    span per question, the answer's text and character offsets.

    Args:
        model: a `SpanModel`.
        preprocessor: the run's `QuestionAnsweringPreprocessor`.
        questions, contexts: string[batch] each.

    Example:
        answer_batch(model, preprocessor, tf.constant(["Who?"]), tf.constant(["Anna wrote it."]))["answer"]
    """
    windows = preprocessor.windows(questions, contexts, whole_words=True)
    # The model reads only up to the longest window's last token.
    width = tf.maximum(tf.reduce_max(window_length(windows)), 1)
    windows = {k: v[:, :width] if v.shape.rank == 2 else v for k, v in windows.items()}
    spans = _window_spans_in_chunks(model, preprocessor, windows, WINDOW_CHUNK)
    return preprocessor.answers(contexts, spans, windows, tf.size(questions))


def answer_graph(model, tokenizer, model_config, questions, contexts) -> dict:
    """`answer_batch` with the `QuestionAnsweringPreprocessor` of a tokenizer and
    a `ModelConfig`."""
    return answer_batch(model, QuestionAnsweringPreprocessor.for_model(tokenizer, model_config), questions, contexts)


def encode(tokenizer, model_config, questions, contexts, whole_words: bool = False) -> dict:
    """`QuestionAnsweringPreprocessor.windows` of the preprocessor of a
    tokenizer and a `ModelConfig`."""
    return QuestionAnsweringPreprocessor.for_model(tokenizer, model_config).windows(questions, contexts, whole_words)


def _window_spans_in_chunks(model, preprocessor, windows, most: int):
    """The preprocessor's `best_window_spans` of every window, running the
    model and the [windows, width, width] span scores at most `most`
    windows at a time (`map_in_chunks`). Padding windows have no
    `max_context` token, so no span."""
    def one_chunk(part):
        start_logits, end_logits = model(preprocessor.model_inputs(part), training=False)
        return preprocessor.best_window_spans(start_logits, end_logits, part)

    keys = ("token_ids", "segment_ids", "padding_mask", "token_starts", "max_context")
    return map_in_chunks(
        one_chunk, {k: windows[k] for k in keys}, most,
        fn_output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
                             tf.TensorSpec([None], tf.bool)),
    )


def answer_fn(model, tokenizer, model_config):
    """(questions string[B], contexts string[B]) -> dict of answer, score,
    start, end: `answer_batch` traced once, with the `QuestionAnsweringPreprocessor`
    of `tokenizer` and `model_config`.

    Example:
        answer_fn(lm.model, lm.tokenizer, lm.config.model)(tf.constant(["Who?"]), tf.constant(["Anna."]))
    """
    preprocessor = QuestionAnsweringPreprocessor.for_model(tokenizer, model_config)
    return tf.function(lambda questions, contexts: answer_batch(model, preprocessor, questions, contexts),
                       input_signature=[tf.TensorSpec([None], tf.string)] * 2, autograph=False)


def answer_questions(answer, questions: list, contexts: list, batch_size: int = 32,
                     on_batch: Optional[Callable[[int], None]] = None) -> list[dict]:
    """Answers in batches, as plain Python values, in the questions' order;
    `on_batch(n)` hears after each batch that n more are answered.

    Batches hold passages of similar length (sorted by characters), since
    the model reads each batch only up to its longest window: in random
    order nearly every batch of SQuAD dev holds one full window."""
    if len(questions) != len(contexts):
        raise ValueError("one context per question")
    for i, (q, c) in enumerate(zip(questions, contexts)):
        if not q.strip():
            raise UserError(f"question {i + 1} is empty")
        if not c.strip():
            raise UserError(f"the context of question {i + 1} is empty")
    order = sorted(range(len(questions)), key=lambda i: (len(contexts[i]), len(questions[i])))
    out = [None] * len(questions)
    for first in range(0, len(order), batch_size):
        batch = order[first:first + batch_size]
        result = answer(tf.constant([questions[i] for i in batch]), tf.constant([contexts[i] for i in batch]))
        for i, a, s, b, e in zip(batch, *(result[k].numpy() for k in ("answer", "score", "start", "end"))):
            # No span (a passage without tokens): no score, since JSON has no -inf.
            score = float(s) if math.isfinite(s) else None
            out[i] = {"answer": a.decode("utf-8"), "score": score, "start": int(b), "end": int(e)}
        if on_batch is not None:
            on_batch(len(batch))
    return out
