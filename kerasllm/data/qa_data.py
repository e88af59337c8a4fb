"""Question-answering data of a run: SQuAD-format examples -> encoder windows.

The training file is `data.source` (the registered `squad-v1.1`, or a
SQuAD-format JSON file with `data.format: squad`). Whole articles (by
title) are held out for validation with the same seeded hash that splits
text elsewhere, so no paragraph is on both sides; the registered dataset's
`dev` file stays for `kerasllm evaluate`. Windows and labels are made by
the run's `QuestionAnsweringPreprocessor` inside tf.data, the same ops the
exported model runs.

Example:
    examples = qa_examples(config, "train", data_dir)
    preprocessor = QuestionAnsweringPreprocessor.for_model(tokenizer, config.model)
    windows = window_dataset(example_dataset(examples.examples), preprocessor)   # one element per window
    batches = length_batches(windows.repeat(), batch_size=32, seq_len=config.model.seq_len)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm.config import RunConfig
from kerasllm.data import pipelines, registry
from kerasllm.data.squad import SquadData, read_squad
from kerasllm.errors import UserError

EXAMPLE_BATCH = 64  # examples turned into windows per tf.data step
LENGTH_STEP = 32  # batches are cut to a multiple of this many tokens


def squad_file(config: RunConfig, split: str, data_dir: Optional[str] = None) -> Path:
    """The SQuAD-format file of `split` (train, or the registered dataset's dev)."""
    source = config.data.source
    info = registry.DATASETS.get(source)
    if info is not None:
        if info.format != "squad":
            raise UserError(f"data.source: '{source}' is not a question-answering dataset; use squad-v1.1 "
                            "or a SQuAD-format JSON file with data.format: squad")
        return registry.resolve(source, split, data_dir)
    if split != "train":
        raise UserError(f"data.source: {source} is a single file; evaluate on its validation split (--split validation)")
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"data.source: no file {source} (give squad-v1.1 or a SQuAD-format JSON file)")
    return path


def qa_examples(config: RunConfig, split: str, data_dir: Optional[str] = None) -> SquadData:
    """Examples of `train`, `validation` (articles held out of train) or `dev`.

    Raises:
        ValueError: another split name (it would otherwise read as training data).
    """
    pipelines.check_split(split, ("train", "validation", "dev"))
    if split == "dev":  # scored only: its answers' offsets are not used
        return read_squad(squad_file(config, "dev", data_dir), for_scoring=True)
    data = read_squad(squad_file(config, "train", data_dir))
    titles = tf.constant([e.title or e.context[:80] for e in data.examples], tf.string)  # also when empty
    held_out = pipelines.is_validation(titles, config.data.val_fraction, config.data.split_seed).numpy()
    keep = [e for e, v in zip(data.examples, held_out) if v == (split == "validation")]
    return SquadData(keep, data.skipped, data.paragraphs)


def example_dataset(examples: list) -> tf.data.Dataset:
    """question, context and the first gold answer's character span, per example."""
    starts = [e.answer_starts[0] for e in examples]
    return tf.data.Dataset.from_tensor_slices({
        "question": tf.constant([e.question for e in examples], tf.string),
        "context": tf.constant([e.context for e in examples], tf.string),
        "answer_start": tf.constant(starts, tf.int64),
        "answer_end": tf.constant([s + len(e.answers[0]) for s, e in zip(starts, examples)], tf.int64),
    })


def window_dataset(examples: tf.data.Dataset, preprocessor) -> tf.data.Dataset:
    """One `(inputs, (start_position, end_position))` element per window
    (`QuestionAnsweringPreprocessor.training_example`) of each example."""
    return (examples.batch(EXAMPLE_BATCH).map(preprocessor.training_example, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch())


def window_length(inputs, labels=None):
    """Tokens in use: [CLS] question [SEP] context [SEP]."""
    return tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=-1)


def length_batches(windows: tf.data.Dataset, batch_size: int, seq_len: int, step: int = LENGTH_STEP) -> tf.data.Dataset:
    """Full batches of windows of similar length, each cut to its longest
    window rounded up to `step` tokens. SQuAD windows use about two thirds of
    a 256-token window on average, so the encoder skips most of the padding;
    the few widths (seq_len / step) keep retracing bounded. Deterministic
    for a deterministic input, so a resumed run can skip batches exactly."""
    boundaries = list(range(step + 1, seq_len + 1, step))  # a bucket holds lengths below its boundary
    batches = windows.bucket_by_sequence_length(
        window_length, bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        drop_remainder=True, no_padding=True,
    )

    def cut(inputs, labels):
        longest = tf.reduce_max(window_length(inputs))
        width = tf.minimum((longest + step - 1) // step * step, seq_len)
        return {k: v[:, :width] for k, v in inputs.items()}, labels

    return batches.map(cut, num_parallel_calls=tf.data.AUTOTUNE)
