"""The language model's preprocessor: its one path between strings and ids.

Training reads documents as one token stream (each document followed by
the end-of-text id) packed into blocks; generation and scoring read text
as ids led by the end-of-text id, which is how the model saw document
starts in training (so an empty prompt works). Everything is TensorFlow
ops, so the same methods run inside tf.data, in-process and inside an
exported SavedModel.

Example:
    preprocessor = LanguageModelPreprocessor(tokenizer)
    batch = preprocessor.generate_preprocess(tf.constant(["ROMEO:"]), 50, context=128)
    ids = model.generate(batch.inputs(), stop_token_ids=(tokenizer.eot_id,))["token_ids"]
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class PromptBatch(NamedTuple):
    """Prompts as the padded batch that cached decoding fills."""

    token_ids: tf.Tensor  # int32[batch, longest prompt + max_new_tokens], pad after each prompt
    prompt_mask: tf.Tensor  # bool, True on prompt tokens
    lengths: tf.Tensor  # int32[batch], prompt tokens kept (end-of-text included)
    full_lengths: tf.Tensor  # int32[batch], before cutting to the context

    def inputs(self) -> dict:
        return {"token_ids": self.token_ids, "padding_mask": self.prompt_mask}


def keep_last(ids: tf.RaggedTensor, keep) -> tf.RaggedTensor:
    """The last `keep` ids of each row (all of a shorter row)."""
    starts = tf.maximum(ids.row_limits() - tf.cast(keep, ids.row_splits.dtype), ids.row_starts())
    return tf.gather(ids.values, tf.ragged.range(starts, ids.row_limits()))


class LanguageModelPreprocessor:
    """Strings <-> ids of a causal language model (GPT, LSTM), the role of
    keras-hub's `CausalLMPreprocessor`: documents -> the training token
    stream, blocks -> (inputs, targets), prompts -> the batch decoding
    fills (`generate_preprocess`), generated ids -> continuation text
    (`generate_postprocess`), texts -> ids to score (`with_start_token`).

    Args:
        tokenizer: the run's `kerasllm.data.tokenizers.Tokenizer`; its
            end-of-text id separates documents and starts every prompt.

    Example:
        preprocessor = LanguageModelPreprocessor(CharTokenizer(list(" Tabeo")))
        preprocessor.with_start_token(tf.constant(["To be"]))  # [[1, 4, 8, 3, 6, 7]]
        inputs, targets = preprocessor.training_example(tf.constant([[1, 4, 8, 3]]))
        # inputs [[1, 4, 8]], targets [[4, 8, 3]]
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def document_ids(self, texts, ends) -> tf.Tensor:
        """One 1-D int32 chunk of the token stream: the ids of `texts`
        (string[n], pieces of documents), with an end-of-text id after each
        piece that ends a document (`ends`, int[n]: 1 or 0)."""
        tok = self.tokenizer
        ids = tok.tokenize(texts)
        # After a document: end-of-text, then the start token where a
        # pretrained family has its own (Llama 3's begin-of-text), so the
        # next document starts as the family's pretraining started them.
        separator = [tok.eot_id] if tok.start_id == tok.eot_id else [tok.eot_id, tok.start_id]
        ends = tf.cast(ends, tf.int32) * len(separator)
        after = tf.gather(tf.constant(separator, tf.int32), tf.ragged.range(ends) % len(separator))
        return tf.concat([tf.cast(ids, tf.int32), after], axis=1).flat_values

    @staticmethod
    def training_example(blocks: tf.Tensor):
        """A batch of packed blocks of `seq_len + 1` ids -> (inputs, targets):
        each block without its last id, and shifted by one."""
        return blocks[:, :-1], blocks[:, 1:]

    def with_start_token(self, texts) -> tf.RaggedTensor:
        """Ragged int32 ids of `texts` (string[batch]), each row led by the
        tokenizer's `start_id` (the end-of-text id but for pretrained
        families with a start token): what scoring predicts from, and a prompt before
        it is cut to the context."""
        ids = self.tokenizer.tokenize(texts)
        start = tf.fill([tf.shape(texts)[0], 1], tf.constant(self.tokenizer.start_id, tf.int32))
        return tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)

    def prompt_batch(self, ids: tf.RaggedTensor, max_new_tokens, context) -> PromptBatch:
        """Ragged prompt ids -> the padded `PromptBatch` decoding fills, each
        row cut to its last `context - max_new_tokens` ids (not cut when
        `context` is None)."""
        pad_id = self.tokenizer.pad_id
        full_lengths = tf.cast(ids.row_lengths(), tf.int32)
        if context is not None:
            ids = keep_last(ids, context - max_new_tokens)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        token_ids = tf.pad(ids.to_tensor(default_value=pad_id), [[0, 0], [0, max_new_tokens]], constant_values=pad_id)
        mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1])
        return PromptBatch(token_ids, mask, lengths, full_lengths)

    def generate_preprocess(self, prompts, max_new_tokens, context) -> PromptBatch:
        """Prompts (string[batch]) -> the `PromptBatch` with room for
        `max_new_tokens` after each, led by end-of-text and cut from the
        left to fit `context` (None: a model without a context limit)."""
        return self.prompt_batch(self.with_start_token(prompts), max_new_tokens, context)

    def generate_postprocess(self, token_ids, keep, prompt_mask) -> tf.Tensor:
        """The text (string[batch]) that decoding wrote after each prompt.

        Args:
            token_ids: int32[batch, length] after decoding.
            keep: bool[batch, length], the prompt and the new ids to keep
                (decoding decides where a row stops).
            prompt_mask: bool[batch, length], true on the prompt's ids.

        Prompt and continuation are detokenized together, because a
        subword tokenizer joins pieces across the boundary, and the
        prompt's own text is then cut off the front.
        """
        full = self.tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, keep))
        prompt = self.tokenizer.detokenize(tf.ragged.boolean_mask(token_ids, prompt_mask))
        cut = tf.strings.length(prompt)
        starts_with_prompt = tf.equal(tf.strings.substr(full, tf.zeros_like(cut), cut), prompt)
        rest = tf.strings.substr(full, cut, tf.maximum(tf.strings.length(full) - cut, 0))
        return tf.where(starts_with_prompt, rest, full)

    def texts_to_ids(self, texts) -> dict:
        """Texts -> `token_ids` int32[batch, longest] (padded with the
        tokenizer's `fill_id`, which `ids_to_texts` drops) and `num_tokens`
        int32[batch]: the export's `tokenize`."""
        ids = self.tokenizer.tokenize(texts)
        return {
            "token_ids": ids.to_tensor(default_value=self.tokenizer.fill_id),
            "num_tokens": tf.cast(ids.row_lengths(), tf.int32),
        }

    def num_tokens(self, texts) -> tf.Tensor:
        """int64[batch]: how many tokens each text is (no start or end-of-text
        id): what tokens per character and bits per character count."""
        return tf.cast(self.tokenizer.tokenize(texts).row_lengths(), tf.int64)

    def ids_to_texts(self, token_ids) -> tf.Tensor:
        """int ids [batch, None] -> string[batch]; padding and end-of-text
        ids drop out: the export's `detokenize`."""
        return self.tokenizer.detokenize(token_ids)
