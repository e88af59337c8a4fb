"""Question-answering data of a run: SQuAD-format examples -> encoder windows.

The training file is `data.source` (the registered `squad-v1.1`, or a
SQuAD-format JSON file with `data.format: squad`). Whole articles (by
title) are held out for validation with the same seeded hash that splits
text elsewhere, so no paragraph is on both sides; the registered dataset's
`dev` file stays for `kerasllm evaluate`. Windows and labels are made by
`qa_features` inside tf.data, the same ops the exported model runs.

Example:
    examples = qa_examples(config, "train", data_dir)
    windows = window_dataset(examples, tokenizer, config.model)   # one element per window
    batches = length_batches(windows.repeat(), batch_size=32, seq_len=config.model.seq_len)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import tensorflow as tf

from kerasllm.config import RunConfig
from kerasllm.data import pipelines, qa_features, registry
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


def encode(tokenizer, model_config, questions, contexts, whole_words: bool = False) -> dict:
    """Windows (`qa_features.make_windows`) of a batch of questions and
    contexts; `whole_words` adds the word offsets that answering needs."""
    q_ids, _, _ = qa_features.tokenize_with_offsets(tokenizer, questions)
    c_ids, c_starts, c_ends, *words = qa_features.tokenize_with_offsets(tokenizer, contexts, with_words=whole_words)
    word_offsets = {"context_word_starts": words[0], "context_word_ends": words[1]} if words else {}
    return qa_features.make_windows(
        q_ids, c_ids, c_starts, c_ends, seq_len=model_config.seq_len, doc_stride=model_config.doc_stride,
        max_question_tokens=model_config.max_question_tokens, cls_id=tokenizer.special_id("[CLS]"),
        sep_id=tokenizer.special_id("[SEP]"), pad_id=tokenizer.pad_id, **word_offsets,
    )


MODEL_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def window_dataset(examples: tf.data.Dataset, tokenizer, model_config) -> tf.data.Dataset:
    """One `(inputs, (start_position, end_position))` element per window."""

    def windows(batch):
        w = encode(tokenizer, model_config, batch["question"], batch["context"])
        starts, ends = qa_features.window_labels(w, batch["answer_start"], batch["answer_end"])
        return {k: w[k] for k in MODEL_INPUTS}, (starts, ends)

    return examples.batch(EXAMPLE_BATCH).map(windows, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


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
