"""Language-model input pipelines: text -> token stream -> packed blocks ->
(inputs, targets) batches, all as tf.data graph ops.

Documents are tokenized in batches by the language model's preprocessor
(`LanguageModelPreprocessor.document_ids`: each document followed by the
end-of-text token) and packed into blocks of `seq_len + 1` tokens with a `scan` that carries the
leftover tokens, so memory stays bounded whatever the corpus size.

The train/validation split happens on the text, before tokenization (the
tokenizer is learned from the training split only): pieces of text (lines or
records) go to one split in groups of `split_group` consecutive pieces,
chosen by a seeded stateless hash, so the split is the same on every run and
machine and needs no pass over the data.

Example:
    train_text = split(texts, cfg.data, "train")
    blocks = token_blocks(token_stream(train_text, tokenizer), seq_len=256)
    batches = lm_batches(blocks, batch_size=32, training=True)
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.data.preprocessors.language_model import LanguageModelPreprocessor


@tf.autograph.experimental.do_not_convert  # these maps are plain TF ops: no AutoGraph rewrite (seconds per process)
def token_stream(texts: tf.data.Dataset, tokenizer) -> tf.data.Dataset:
    """Batches of `(texts, ends)` -> 1-D int32 chunks of the token stream,
    through the `LanguageModelPreprocessor` of `tokenizer`."""
    preprocessor = LanguageModelPreprocessor(tokenizer)
    return texts.map(preprocessor.document_ids, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@tf.autograph.experimental.do_not_convert
def split_token_streams(batches: tf.data.Dataset, tokenizer, data_config) -> tf.data.Dataset:
    """`(train_chunk, validation_chunk)` per keyed text batch: both splits'
    token streams from one pass over the text (what `prepare` writes)."""
    preprocessor = LanguageModelPreprocessor(tokenizer)

    def both(key, batch):
        texts, ends = batch
        val = _validation_mask(key, texts, data_config)
        train = preprocessor.document_ids(tf.boolean_mask(texts, ~val), tf.boolean_mask(ends, ~val))
        return train, preprocessor.document_ids(tf.boolean_mask(texts, val), tf.boolean_mask(ends, val))

    return batches.map(both, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@tf.autograph.experimental.do_not_convert
def token_blocks(chunks: tf.data.Dataset, seq_len: int) -> tf.data.Dataset:
    """1-D token chunks -> blocks of exactly `seq_len + 1` tokens."""
    size = seq_len + 1

    def pack(leftover, chunk):
        joined = tf.concat([leftover, chunk], axis=0)
        n = tf.shape(joined)[0] // size
        blocks = tf.reshape(joined[: n * size], [n, size])
        return joined[n * size :], blocks

    return chunks.scan(tf.zeros([0], tf.int32), pack).unbatch()


SPLITS = ("train", "validation")  # of a language-model text source


def check_split(which: str, known: tuple) -> None:
    """Refuses a split name outside `known`: the split choosers test for
    the held-out name, so any other name would silently be training data."""
    if which not in known:
        raise ValueError(f"split {which!r}: expected one of {', '.join(known)}")


def is_validation(group_key: tf.Tensor, val_fraction: float, seed: int) -> tf.Tensor:
    """Deterministic, seeded choice of validation pieces by their group's
    key (a string vector): each draw is a hash of (seed, key), so the
    answer never depends on what else is in the batch."""
    buckets = tf.strings.to_hash_bucket_strong(group_key, 1_000_000, key=[seed, 0x6B65726173])
    return tf.cast(buckets, tf.float64) < val_fraction * 1_000_000


def _validation_mask(key, texts, data_config):
    """Which pieces of the text batch with `key` = [file, batch] belong to
    the validation split.

    A piece's place is `batch * TEXT_BATCH + position` within its file,
    fixed for a given source and cleaning whatever the batch sizes; pieces
    go to a split `split_group` consecutive places at a time. Groups of the
    first file are keyed by their number alone, those of file k by "k:number".
    """
    from kerasllm.data.sources import TEXT_BATCH

    file, batch = key[0], key[1]
    place = batch * TEXT_BATCH + tf.range(tf.size(texts, out_type=tf.int64))
    group = tf.strings.as_string(place // data_config.split_group)
    group = tf.cond(file > 0, lambda: tf.strings.as_string(file) + ":" + group, lambda: group)
    return is_validation(group, data_config.val_fraction, data_config.split_seed)


@tf.autograph.experimental.do_not_convert
def split(batches: tf.data.Dataset, data_config, which: str) -> tf.data.Dataset:
    """The `train` or `validation` part of keyed batches of `(texts, ends)`.

    Raises:
        ValueError: `which` is another name (a caller's mistake: it would
            otherwise read as the training split).
    """
    check_split(which, SPLITS)
    want_val = which == "validation"

    def keep(key, batch):
        texts, ends = batch
        mask = tf.equal(_validation_mask(key, texts, data_config), want_val)
        return tf.boolean_mask(texts, mask), tf.boolean_mask(ends, mask)

    return batches.map(keep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@tf.autograph.experimental.do_not_convert
def with_validation_flags(batches: tf.data.Dataset, data_config) -> tf.data.Dataset:
    """Keyed batches of `(texts, ends)` -> `(texts, ends, is_validation)`:
    the split of every piece, as `split` decides it, in one pass (what
    `kerasllm data-report` reads).

    Args:
        batches: keyed batches, as `sources.keyed_text_dataset` gives them.
        data_config: the `DataConfig` (val_fraction, split_group, split_seed).

    Example:
        flagged = with_validation_flags(keyed_text_dataset(source, cfg.data.cleaning), cfg.data)
    """

    def flag(key, batch):
        texts, ends = batch
        return texts, ends, _validation_mask(key, texts, data_config)

    return batches.map(flag, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@tf.autograph.experimental.do_not_convert
def lm_batches(
    blocks: tf.data.Dataset,
    batch_size: int,
    training: bool,
    shuffle_buffer: int = 10000,
    seed: int = 0,
    skip_batches: int = 0,
    cache: bool = False,
    to_example=LanguageModelPreprocessor.training_example,
) -> tf.data.Dataset:
    """Blocks -> batches of (inputs, targets) (or what `to_example`, the
    task's preprocessor's `training_example`, makes of a batch of blocks).

    Training batches repeat forever in a seeded order; `skip_batches`
    resumes that exact stream part-way (after a crash), which is why
    everything before it must be deterministic.
    """
    if cache:
        blocks = blocks.cache()
    if training:
        blocks = blocks.repeat()
        if shuffle_buffer > 1:
            blocks = blocks.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    ds = blocks.batch(batch_size, drop_remainder=training)
    if skip_batches:
        ds = ds.skip(skip_batches)
    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    return shard_by_batch(ds.prefetch(tf.data.AUTOTUNE))


def shard_by_batch(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Multi-worker training: every worker runs this same stream and keeps
    its share of each global batch (tf.data's DATA auto-shard policy), so
    the cluster trains on exactly the one-device stream.

    Set explicitly because TensorFlow's AUTO policy would try FILE sharding,
    which cannot see through the packing scan (it fails there and falls
    back to DATA with a long warning). `prepare`d shards are split by file
    instead, before packing (`LanguageModelTask.worker_batches`).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def count(ds: tf.data.Dataset) -> int:
    """Number of elements, by one pass (the stream's length is unknown)."""
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def count_blocks(chunks: tf.data.Dataset, seq_len: int, on_tokens=None) -> int:
    """How many blocks `token_blocks(chunks, seq_len)` makes, by one pass
    over the chunks: packing keeps every token, so it is the stream's
    length // (seq_len + 1), without building and counting the blocks.
    `on_tokens(n)` hears the tokens counted, per batch of chunks."""
    if on_tokens is None:
        tokens = chunks.reduce(tf.constant(0, tf.int64), lambda n, chunk: n + tf.size(chunk, out_type=tf.int64))
        return int(tokens) // (seq_len + 1)
    tokens = 0
    sizes = chunks.map(lambda chunk: tf.size(chunk, out_type=tf.int64)).batch(1024).map(tf.reduce_sum)
    for n in sizes.as_numpy_iterator():  # Python runs once per 1024 chunks
        tokens += int(n)
        on_tokens(int(n))
    return tokens // (seq_len + 1)
