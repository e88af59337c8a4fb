"""TensorBoard pictures of one fixed validation example at each epoch's end,
so a user can watch the model learn: the explanation's pictures (a language
model's surprisal and last-layer self-attention, a translator's
cross-attention, question answering's start/end probabilities) as images,
and its per-token loss as a text table.

The example is the first of the validation split (a language model's
first validation block, a translator's first validation pair with its
reference, a question answerer's first validation question with its gold
answer), so every epoch explains the same input. What is drawn is the
per-kind explanation's choice (kerasllm/inference/explain.py).

Example:
    callbacks.append(*explain_callbacks(config, task, writer, run_state))
"""

from __future__ import annotations

import functools
import io
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from kerasllm.data.preprocessors import LanguageModelPreprocessor
from kerasllm.loaded_run import LoadedRun

TAG = "explain"  # images `explain/<panel name>`, text `explain/token_loss`


class ExplainExample(keras.callbacks.Callback):
    """At each epoch's end: `explain(model)`'s panels as images
    `explain/<name>` and its `loss_table()` as text `explain/token_loss`,
    at the run's global step (as the other summaries).

    Args:
        writer: the run's `tf.summary` writer (logs/train).
        run_state: the trainer's `RunState` (its step; nothing is drawn once
            the run diverged).
        explain: model -> an explanation (`kerasllm.inference.explain`), or
            None when there is nothing to explain.

    Example:
        ExplainExample(writer, run_state, lambda model: explain_language_model(LoadedRun(config, tok, model), text))
    """

    def __init__(self, writer, run_state, explain: Callable):
        super().__init__()
        self.writer = writer
        self.run_state = run_state
        self.explain = explain

    def on_epoch_end(self, epoch, logs=None):
        if self.run_state.diverged:
            return
        from kerasllm.pictures.png import render_png

        explanation = self.explain(self.model)
        if explanation is None:
            return
        with self.writer.as_default(step=self.run_state.state.step):
            for panel in explanation.panels():
                tf.summary.image(f"{TAG}/{panel.name}", png_pixels(render_png([panel]))[None])
            table = explanation.loss_table()
            if table:
                tf.summary.text(f"{TAG}/token_loss", table)
        self.writer.flush()


def png_pixels(png: bytes) -> np.ndarray:
    """PNG bytes -> uint8 [height, width, 4] RGBA pixels (what
    `tf.summary.image` takes).

    Example:
        png_pixels(render_png([panel])).shape  # (height, width, 4)
    """
    import matplotlib.image

    return (matplotlib.image.imread(io.BytesIO(png), format="png") * 255).round().astype(np.uint8)


def explain_callbacks(config, task, writer, run_state) -> list:
    """`[ExplainExample]` for a run whose training side has an explanation
    (its `validation_explainer()`, an optional `Training` member), else []
    (masked-LM pretraining, or no validation example).

    Args:
        config: the `RunConfig`.
        task: the trainer's `Training` (its tokenizers and validation data).
        writer, run_state: as `ExplainExample` takes them.

    Example:
        callbacks += explain_callbacks(config, task, writer, run_state)
    """
    explain = getattr(task, "validation_explainer", lambda: None)()
    return [] if explain is None else [ExplainExample(writer, run_state, explain)]


def language_model_explainer(config, task) -> Callable:
    """model -> the explanation of a language model's first validation block."""
    from kerasllm.inference import explain as ex

    def explain(model, text):
        return ex.explain_language_model(LoadedRun(config, task.tokenizer, model), text)

    return Lazy(explain, functools.partial(_first_block_text, task))


def translation_explainer(config, task) -> Callable:
    """model -> the explanation of a translator's first validation pair, read against its reference."""
    from kerasllm.inference import explain as ex

    def explain(model, pair):
        lm = LoadedRun(config, task.corpus.source_tokenizer, model, task.corpus.target_tokenizer)
        return ex.explain_translation(lm, pair[0], reference=pair[1])

    return Lazy(explain, functools.partial(_first_pair, task))


def question_answering_explainer(config, task) -> Callable:
    """model -> the explanation of the first validation question, its gold answer marked."""
    from kerasllm.inference import explain as ex

    def explain(model, question):
        lm = LoadedRun(config, task.tokenizer, model)
        return ex.explain_question_answering(lm, question.question, question.context, gold=(
            question.answer_starts[0], question.answer_starts[0] + len(question.answers[0])))

    return Lazy(explain, functools.partial(_first_question, task))


class Lazy:
    """`explain(model, example())`, with `example()` called once, on first
    use; None when the example is empty (a validation split without text)."""

    def __init__(self, explain: Callable, example: Callable):
        self._explain, self._example, self._value = explain, example, None

    def __call__(self, model):
        if self._value is None:
            self._value = self._example()
        return self._explain(model, self._value) if self._value else None


def _first_block_text(task) -> str:
    """The text of the first validation block's first context - 1 tokens
    (a block holds context + 1): with the start token, the whole text fits
    in the attention picture."""
    for block in task.corpus.blocks("validation", task.block_len).take(1):
        text = LanguageModelPreprocessor(task.tokenizer).ids_to_texts([block.numpy()[:-2]])
        return text.numpy()[0].decode("utf-8", errors="replace")
    return ""


def _first_pair(task) -> tuple:
    for sources, targets in task.corpus.pairs("validation").take(1):
        return sources.numpy()[0].decode("utf-8"), targets.numpy()[0].decode("utf-8")
    return ()


def _first_question(task):
    return task.validation_data.examples[0]
