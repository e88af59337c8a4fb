"""Language-model evaluation: loss, perplexity and token accuracy.

Perplexity is exp of the mean per-token cross-entropy (nats) over the
validation split, every block of which has `seq_len` predicted tokens.

Example:
    evaluate_lm("runs/shakespeare-char")  # {"loss": 1.52, "perplexity": 4.57, ...}
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
    return {
        "run": run_dir,
        "split": split,
        "loss": round(loss, 5),
        "perplexity": round(math.exp(loss), 4),
        "accuracy": round(float(results["accuracy"]), 5),
    }


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
