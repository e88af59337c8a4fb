"""The translation preprocessor: sentence pairs -> encoder-decoder inputs,
sources -> the inputs decoding starts from, generated ids -> translations.

The encoder reads the source ids; the decoder reads the end-of-text id (as
its start token) followed by the target ids and learns to predict the
target ids followed by end-of-text. TensorFlow ops only: the training
pipeline (`kerasllm.data.pair_batches`), in-process translation and the
exported translator run the same methods.

Example:
    preprocessor = TranslationPreprocessor(source_tokenizer, target_tokenizer, sequence_length=64)
    inputs = preprocessor.generate_preprocess(tf.constant(["Where is the station?"]), 64)
    out = model.generate(inputs, stop_token_ids=(target_tokenizer.eot_id,))
    preprocessor.generate_postprocess(out["decoder_token_ids"], out["decoder_padding_mask"])
"""

from __future__ import annotations

import tensorflow as tf


class TranslationPreprocessor:
    """Strings <-> ids of a translator, the role of keras-hub's
    `Seq2SeqLMPreprocessor`, with a tokenizer per side.

    Args:
        source_tokenizer: the source side's tokenizer.
        target_tokenizer: the target side's (may be `source_tokenizer`).
        sequence_length: the model's `seq_len`: training pairs with a
            longer side (start or end token included) are left out, and
            requests translate at most this many tokens.

    Example:
        preprocessor = TranslationPreprocessor(tok, tok, sequence_length=12)
        sources, decoder_ids, labels = preprocessor.encode_pairs(tf.constant(["the cat"]), tf.constant(["un chat"]))
        # decoder_ids: [[eot, un, ch, ##at]], labels: [[un, ch, ##at, eot]]
    """

    def __init__(self, source_tokenizer, target_tokenizer, sequence_length: int | None = None):
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.sequence_length = sequence_length

    @property
    def tokenizer(self):
        """The source tokenizer (the one a single-vocabulary model shares)."""
        return self.source_tokenizer

    def encode_pairs(self, sources, targets):
        """string[batch] pairs -> ragged int32 (source ids, decoder ids led
        by end-of-text, labels: the target ids then end-of-text)."""
        src = self.source_tokenizer.tokenize(sources)
        tgt = self.target_tokenizer.tokenize(targets)
        eot = tf.fill([tf.shape(targets)[0], 1], tf.constant(self.target_tokenizer.eot_id, tf.int32))
        eot = tf.RaggedTensor.from_tensor(eot)
        return src, tf.concat([eot, tgt], axis=1), tf.concat([tgt, eot], axis=1)

    def padding_values(self) -> tuple:
        """The pad ids of (source ids, decoder ids, labels), for batching
        `encode_pairs`' rows."""
        return self.source_tokenizer.pad_id, self.target_tokenizer.pad_id, self.target_tokenizer.pad_id

    @staticmethod
    def training_example(sources, decoder_ids, labels, source_lengths, decoder_lengths):
        """A padded batch of `encode_pairs` rows and their lengths ->
        (inputs, labels, sample_weight): inputs hold the encoder and decoder
        ids and padding masks; the weights are 0 on label padding."""
        inputs = {
            "encoder_token_ids": sources,
            "encoder_padding_mask": tf.sequence_mask(source_lengths, tf.shape(sources)[1]),
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": tf.sequence_mask(decoder_lengths, tf.shape(decoder_ids)[1]),
        }
        return inputs, labels, tf.cast(inputs["decoder_padding_mask"], tf.float32)

    def generate_preprocess(self, sources, max_length) -> dict:
        """Sources (string[batch]) -> the translator's input dict: sources
        cut and padded to `max_length` ids (one width, so a traced decoder
        is reused), and a decoder prompt of end-of-text then
        `max_length - 1` free positions."""
        source, target = self.source_tokenizer, self.target_tokenizer
        ids = source.tokenize(sources)[:, :max_length]
        batch = tf.shape(sources)[0]
        free = tf.fill([batch, max_length - 1], tf.constant(target.pad_id, tf.int32))
        dense = ids.to_tensor(default_value=source.pad_id)
        dense = tf.pad(dense, [[0, 0], [0, max_length - tf.shape(dense)[1]]], constant_values=source.pad_id)
        return {
            "encoder_token_ids": tf.ensure_shape(dense, [None, max_length if isinstance(max_length, int) else None]),
            "encoder_padding_mask": tf.sequence_mask(ids.row_lengths(), max_length),
            "decoder_token_ids": tf.concat([tf.fill([batch, 1], tf.constant(target.eot_id, tf.int32)), free], 1),
            "decoder_padding_mask": tf.concat([tf.ones([batch, 1], tf.bool),
                                               tf.zeros([batch, max_length - 1], tf.bool)], 1),
        }

    def generate_postprocess(self, token_ids, keep) -> tf.Tensor:
        """Text (string[batch]) of the generated decoder ids that `keep`
        marks (the decoder's padding mask), without the start token."""
        return self.target_tokenizer.detokenize(tf.ragged.boolean_mask(token_ids[:, 1:], keep[:, 1:]))


class BartTranslationPreprocessor(TranslationPreprocessor):
    """A `TranslationPreprocessor` that frames ids as BART was pretrained
    (keras-hub's `BartSeq2SeqLMPreprocessor`, Hugging Face's
    `BartForConditionalGeneration`): the encoder reads `<s> source </s>`,
    the decoder starts from `</s> <s>` (BART's decoder start token, then
    the token it is forced to emit first) and learns `<s> target </s>`.

    Written here rather than used from keras-hub because kerasllm's pair
    pipeline, `translate` and the exported translator share one
    preprocessor interface (ragged pairs, bucketed lengths, a request's
    `max_length`), which keras-hub's fixed-length preprocessor does not
    have; the ids are keras-hub's and the checkpoint's.

    Args:
        source_tokenizer: the checkpoint's tokenizer (`PretrainedTokenizer`:
            `start_id` is `<s>`, `eot_id` is `</s>`).
        target_tokenizer: the same tokenizer (BART has one vocabulary).
        sequence_length: the run's `model.seq_len`, framing tokens included.

    Example:
        preprocessor = BartTranslationPreprocessor(tok, tok, sequence_length=40)
        sources, decoder_ids, labels = preprocessor.encode_pairs(tf.constant(["Hi."]), tf.constant(["Hola."]))
        # sources: [[<s>, Hi, ., </s>]], decoder_ids: [[</s>, <s>, Hola, .]], labels: [[<s>, Hola, ., </s>]]
    """

    # Positions the decoder prompt holds before the first generated token.
    PROMPT = 2

    def _framed_sources(self, sources, max_length=None, ids=None):
        source = self.source_tokenizer
        ids = source.tokenize(sources) if ids is None else ids
        if max_length is not None:
            ids = ids[:, : max_length - 2]
        batch = tf.shape(sources)[0]
        start = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(source.start_id, tf.int32)))
        end = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(source.eot_id, tf.int32)))
        return tf.concat([start, ids, end], axis=1)

    def encode_pairs(self, sources, targets):
        target = self.target_tokenizer
        batch = tf.shape(targets)[0]
        if target is self.source_tokenizer:
            # One vocabulary: both sides in one call, so the byte-level BPE
            # graph is traced once per pipeline instead of twice (seconds each).
            both = target.tokenize(tf.concat([sources, targets], 0))
            src, tgt = both[:batch], both[batch:]
        else:
            src, tgt = None, target.tokenize(targets)

        def column(token_id):
            return tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(token_id, tf.int32)))

        start, end = column(target.start_id), column(target.eot_id)
        return (self._framed_sources(sources, ids=src), tf.concat([end, start, tgt], axis=1),
                tf.concat([start, tgt, end], axis=1))

    def generate_preprocess(self, sources, max_length) -> dict:
        """Sources -> `<s> source </s>` cut and padded to `max_length` ids,
        and a decoder prompt of `</s> <s>` then free positions."""
        source, target = self.source_tokenizer, self.target_tokenizer
        ids = self._framed_sources(sources, max_length)
        batch = tf.shape(sources)[0]
        dense = ids.to_tensor(default_value=source.pad_id)
        # Filled and concatenated, not tf.pad: a pad id other than 0 (BART's
        # is 1) would trace to PadV2, outside kerasllm/export/serving_ops.txt.
        rest = tf.fill([batch, max_length - tf.shape(dense)[1]], tf.constant(source.pad_id, tf.int32))
        dense = tf.concat([dense, rest], 1)
        prompt = tf.constant([target.eot_id, target.start_id], tf.int32)
        free = tf.fill([batch, max_length - self.PROMPT], tf.constant(target.pad_id, tf.int32))
        return {
            "encoder_token_ids": tf.ensure_shape(dense, [None, max_length if isinstance(max_length, int) else None]),
            "encoder_padding_mask": tf.sequence_mask(ids.row_lengths(), max_length),
            "decoder_token_ids": tf.concat([tf.tile(prompt[tf.newaxis], [batch, 1]), free], 1),
            "decoder_padding_mask": tf.concat([tf.ones([batch, self.PROMPT], tf.bool),
                                               tf.zeros([batch, max_length - self.PROMPT], tf.bool)], 1),
        }

    def generate_postprocess(self, token_ids, keep) -> tf.Tensor:
        """Text of the generated ids after the `</s> <s>` prompt."""
        return self.target_tokenizer.detokenize(
            tf.ragged.boolean_mask(token_ids[:, self.PROMPT:], keep[:, self.PROMPT:]))
