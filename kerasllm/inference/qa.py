"""Answering questions about passages with a span model, in-process.

`answer_fn` is one traced TensorFlow function from strings to answers
(tokenize with offsets, cut windows, run the model, pick the best span over
each question's windows, cut the answer out of the context), shared by
`kerasllm qa --run`, `kerasllm evaluate` and the training samples.

Example:
    answer = answer_fn(model, tokenizer, config.model)
    answer(["Who wrote Hamlet?"], ["Hamlet is a tragedy by William Shakespeare."])
    # {"answer": [b"William Shakespeare"], "score": [...], "start": [23], "end": [42]}
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import tensorflow as tf

from kerasllm.data import qa_features
from kerasllm.data.qa_data import MODEL_INPUTS, encode, window_length
from kerasllm.errors import UserError
from kerasllm.inference.chunks import map_in_chunks


WINDOW_CHUNK = 64  # windows per model call: bounds memory whatever the passages' length


def answer_graph(model, tokenizer, model_config, questions, contexts) -> dict:
    """The answering graph (also the exported model's): windows, model, best
    span per question, the answer's text and character offsets."""
    windows = encode(tokenizer, model_config, questions, contexts, whole_words=True)
    # The model reads only up to the longest window's last token.
    width = tf.maximum(tf.reduce_max(window_length(windows)), 1)
    windows = {k: v[:, :width] if v.shape.rank == 2 else v for k, v in windows.items()}
    spans = _window_spans_in_chunks(model, windows, model_config.max_answer_tokens, WINDOW_CHUNK)
    score, start, end = qa_features.spans_of_examples(spans, windows, tf.size(questions))
    return {"answer": qa_features.answer_text(contexts, start, end), "score": score, "start": start, "end": end}


def _window_spans_in_chunks(model, windows, max_answer_tokens: int, most: int):
    """`qa_features.window_best_spans` of every window, running the model
    and the [windows, width, width] span scores at most `most` windows at a
    time (`map_in_chunks`). Padding windows have no `max_context` token, so
    no span."""
    def one_chunk(part):
        start_logits, end_logits = model({k: part[k] for k in MODEL_INPUTS}, training=False)
        return qa_features.window_best_spans(start_logits, end_logits, part, max_answer_tokens)

    return map_in_chunks(
        one_chunk, {k: windows[k] for k in (*MODEL_INPUTS, "token_starts", "max_context")}, most,
        fn_output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32),
                             tf.TensorSpec([None], tf.bool)),
    )


def answer_fn(model, tokenizer, model_config):
    """(questions string[B], contexts string[B]) -> dict of answer, score, start, end."""
    return tf.function(lambda questions, contexts: answer_graph(model, tokenizer, model_config, questions, contexts),
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
