"""Translation batches: tokenized pairs, bucketed by length.

Pairs become ids through the `TranslationPreprocessor` (the encoder reads
the source ids; the decoder reads the end-of-text id, then the target ids,
and learns to predict the target ids, then end-of-text). Pairs with a side longer than `max_length`
tokens (start/end token included) are dropped. Batches group pairs of
similar length (`bucket_by_sequence_length`), so little of each batch is
padding; `padding_fraction` measures how little.

Example:
    src_tok, tgt_tok = train_pair_tokenizers(cfg.tokenizer, split_pairs(pairs, cfg.data, "train"))
    batches = pair_batches(train_pairs, src_tok, tgt_tok, max_length=64, batch_size=64, training=True)
    (inputs, labels, weights) = next(iter(batches))
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.data.preprocessors.translation import TranslationPreprocessor
from kerasllm.data.tokenizers import train_tokenizer


def bucket_boundaries(max_length: int) -> list:
    """Narrow buckets for the many short sentences, wider ones for long."""
    edges, edge = [], 2
    while edge <= max_length:
        edges.append(edge)
        edge += 1 if edge < 16 else 2 if edge < 32 else 4 if edge < 64 else 8
    return edges


def train_pair_tokenizers(config, train_pairs: tf.data.Dataset):
    """(source tokenizer, target tokenizer), learned from batches of training
    pairs only; the same object twice when `config.shared`."""
    if config.shared:
        tokenizer = train_tokenizer(config, train_pairs.map(lambda s, t: tf.concat([s, t], axis=0)))
        return tokenizer, tokenizer
    return (train_tokenizer(config, train_pairs.map(lambda s, t: s), label="source"),
            train_tokenizer(config, train_pairs.map(lambda s, t: t), label="target"))


def pair_batches(pairs: tf.data.Dataset, source_tokenizer, target_tokenizer, max_length: int, batch_size: int,
                 training: bool, seed: int = 0, shuffle_buffer: int = 10000, preprocessor=None) -> tf.data.Dataset:
    """Batches of pairs (as `pair_dataset` gives them) -> (inputs, labels,
    sample_weight) batches (`TranslationPreprocessor.training_example`) of
    `preprocessor` (the run's task's; None: the `TranslationPreprocessor`
    of the two tokenizers)."""
    preprocessor = preprocessor or TranslationPreprocessor(source_tokenizer, target_tokenizer, max_length)
    encoded = pairs.map(preprocessor.encode_pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    encoded = encoded.filter(lambda s, d, l: tf.logical_and(tf.shape(s)[0] <= max_length, tf.shape(d)[0] <= max_length))
    encoded = encoded.map(lambda s, d, l: (s, d, l, tf.shape(s)[0], tf.shape(d)[0]))
    if training:
        encoded = encoded.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    boundaries = bucket_boundaries(max_length)
    batches = encoded.bucket_by_sequence_length(
        element_length_func=lambda s, d, l, ns, nd: tf.maximum(ns, nd),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(*preprocessor.padding_values(), 0, 0),
        drop_remainder=False,
    )
    return batches.map(preprocessor.training_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def padding_fraction(batches: tf.data.Dataset, max_batches: int = 200) -> float:
    """Share of encoder and decoder positions that are padding."""
    padded = total = 0
    for inputs, _, _ in batches.take(max_batches):
        for key in ("encoder_padding_mask", "decoder_padding_mask"):
            mask = inputs[key].numpy()
            padded += int((~mask).sum())
            total += mask.size
    return padded / max(total, 1)
