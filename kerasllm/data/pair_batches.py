"""Translation batches: tokenized pairs, bucketed by length.

The encoder reads the source ids; the decoder reads the end-of-text id (as
its start token) followed by the target ids and learns to predict the target
ids followed by end-of-text. Pairs with a side longer than `max_length`
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


def _encode(source_tokenizer, target_tokenizer, sources, targets):
    src = source_tokenizer.tokenize(sources)
    tgt = target_tokenizer.tokenize(targets)
    eot = tf.fill([tf.shape(targets)[0], 1], tf.constant(target_tokenizer.eot_id, tf.int32))
    eot = tf.RaggedTensor.from_tensor(eot)
    return src, tf.concat([eot, tgt], axis=1), tf.concat([tgt, eot], axis=1)


def pair_batches(pairs: tf.data.Dataset, source_tokenizer, target_tokenizer, max_length: int, batch_size: int,
                 training: bool, seed: int = 0, shuffle_buffer: int = 10000) -> tf.data.Dataset:
    """Batches of pairs (as `pair_dataset` gives them) -> (inputs, labels,
    sample_weight) batches; inputs hold encoder/decoder token ids and padding
    masks, weights are 0 on label padding."""
    encoded = pairs.map(
        lambda s, t: _encode(source_tokenizer, target_tokenizer, s, t),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    ).unbatch()
    encoded = encoded.filter(lambda s, d, l: tf.logical_and(tf.shape(s)[0] <= max_length, tf.shape(d)[0] <= max_length))
    encoded = encoded.map(lambda s, d, l: (s, d, l, tf.shape(s)[0], tf.shape(d)[0]))
    if training:
        encoded = encoded.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    boundaries = bucket_boundaries(max_length)
    pad_src, pad_tgt = source_tokenizer.pad_id, target_tokenizer.pad_id
    batches = encoded.bucket_by_sequence_length(
        element_length_func=lambda s, d, l, ns, nd: tf.maximum(ns, nd),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=(pad_src, pad_tgt, pad_tgt, 0, 0),
        drop_remainder=False,
    )

    def to_model(src, dec, labels, src_lengths, dec_lengths):
        inputs = {
            "encoder_token_ids": src,
            "encoder_padding_mask": tf.sequence_mask(src_lengths, tf.shape(src)[1]),
            "decoder_token_ids": dec,
            "decoder_padding_mask": tf.sequence_mask(dec_lengths, tf.shape(dec)[1]),
        }
        return inputs, labels, tf.cast(inputs["decoder_padding_mask"], tf.float32)

    return batches.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def padding_fraction(batches: tf.data.Dataset, max_batches: int = 200) -> float:
    """Share of encoder and decoder positions that are padding."""
    padded = total = 0
    for inputs, _, _ in batches.take(max_batches):
        for key in ("encoder_padding_mask", "decoder_padding_mask"):
            mask = inputs[key].numpy()
            padded += int((~mask).sum())
            total += mask.size
    return padded / max(total, 1)
