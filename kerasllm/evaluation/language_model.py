"""Language-model evaluation: loss, perplexity, token accuracy and bits per
character.

Perplexity is exp of the mean per-token cross-entropy (nats) over the
validation split, every block of which has `seq_len` predicted tokens. Bits
per character put models with different tokenizers on one scale: the mean
loss times the split's tokens, divided by its characters and by ln 2
(`bits_per_character`).

Example:
    evaluate_lm("runs/shakespeare-char")  # {"loss": 1.52, "perplexity": 4.57, "bits_per_character": 2.19, ...}
"""

from __future__ import annotations

import math
from typing import Optional

import keras

from kerasllm import progress
from kerasllm.data import pipelines
from kerasllm.data.corpus import open_corpus
from kerasllm.loaded_run import load_run
from kerasllm.run_dir import RunDir


def evaluate_lm(run_dir: str, data_dir: Optional[str] = None, split: str = "validation") -> dict:
    lm = load_run(run_dir)
    config = lm.config
    corpus = open_corpus(config, RunDir(run_dir).tokenizer, data_dir)
    batches = pipelines.lm_batches(corpus.blocks(split, config.model.seq_len), config.train.batch_size,
                                   training=False, to_example=lm.preprocessor.training_example)
    lm.model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        weighted_metrics=None,
    )
    with progress.Progress(f"evaluate: {split} split", unit="batches") as report:
        results = lm.model.evaluate(batches, verbose=0, return_dict=True, callbacks=[report.keras_callback()])
    loss = float(results["loss"])
    out = {
        "run": run_dir,
        "split": split,
        "loss": round(loss, 5),
        "perplexity": round(math.exp(loss), 4),
        "accuracy": round(float(results["accuracy"]), 5),
    }
    if corpus.source is not None:  # prepared shards keep no text to count characters in
        characters, tokens = split_size(corpus, split)
        out.update(bits_per_character=round(bits_per_character(loss, tokens, characters), 5),
                   characters=characters, tokens=tokens)
    return out


def split_size(corpus, split: str) -> tuple[int, int]:
    """(characters, tokens) of one split of a raw-text corpus, by one pass
    over its text.

    Characters are Unicode code points of the cleaned text the tokenizer
    reads, plus one for each document end: the end-of-text token that every
    tokenizer spends there stands for a separator, as a line break would
    (so one text scores the same read as one document per line or as a file).
    Tokens are those of the split's token stream, end-of-text included.

    Args:
        corpus: a `kerasllm.data.corpus.Corpus` read from its source (not
            from `prepare`d shards).
        split: "train" or "validation".

    Example:
        corpus = open_corpus(config, RunDir("runs/tang-poems").tokenizer)
        split_size(corpus, "validation")  # (219840, 222713)
    """
    import tensorflow as tf

    from kerasllm.data.preprocessors import LanguageModelPreprocessor

    preprocessor = LanguageModelPreprocessor(corpus.tokenizer)

    def sizes(texts, ends):
        documents = tf.reduce_sum(tf.cast(ends, tf.int64))
        characters = tf.reduce_sum(tf.cast(tf.strings.length(texts, unit="UTF8_CHAR"), tf.int64))
        tokens = tf.reduce_sum(preprocessor.num_tokens(texts))
        return tf.stack([characters + documents, tokens + documents])

    counts = corpus.texts(split).map(sizes, num_parallel_calls=tf.data.AUTOTUNE)
    with progress.Progress(f"evaluate: counting the {split} split's characters", ticking=True):
        total = counts.reduce(tf.zeros([2], tf.int64), lambda acc, n: acc + n).numpy()
    return int(total[0]), int(total[1])


def bits_per_character(loss: float, tokens: int, characters: int) -> float:
    """Mean cross-entropy in nats per token -> bits per character of the text.

    The text's cost is `loss * tokens` nats whatever the tokenizer; divided
    by its characters and by ln 2 it is comparable between a character,
    byte and subword model of the same text.

    Args:
        loss: mean loss per token (nats).
        tokens: tokens of the text (end-of-text included).
        characters: its characters (`split_size`).

    Example:
        bits_per_character(1.0, tokens=300, characters=100)  # 4.328: 3 tokens a character
    """
    return loss * tokens / characters / math.log(2)


def evaluate_masked_lm(run_dir: str, data_dir: Optional[str] = None, split: str = "validation") -> dict:
    """Masked-LM pretraining runs: loss and accuracy on masked tokens of the
    split. The masks are random but seeded (it sets TensorFlow's global
    seed to `train.seed`, as training does) and drawn one block at a time,
    in order, so every call scores the same positions.
    (Drawn for a whole batch, the mask generator's rows take their random
    numbers in whatever order its parallel loop happens to run them.)"""
    import tensorflow as tf

    from kerasllm.training.encoder_tasks import MaskedLMTask

    lm = load_run(run_dir)
    task = MaskedLMTask(lm.config, RunDir(run_dir), data_dir)
    tf.random.set_seed(lm.config.train.seed)
    examples = task.corpus.blocks(split, task.block_len).map(lambda block: task.to_example(block[None]))
    batches = examples.unbatch().batch(lm.config.train.batch_size).prefetch(tf.data.AUTOTUNE)
    lm.model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                     weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    with progress.Progress(f"evaluate: masked tokens of the {split} split", unit="batches") as report:
        results = lm.model.evaluate(batches, verbose=0, return_dict=True, callbacks=[report.keras_callback()])
    return {"run": run_dir, "split": split, "masked_loss": round(float(results["loss"]), 5),
            "masked_accuracy": round(float(results["accuracy"]), 5)}
