"""The masked-LM pretraining preprocessor: packed text blocks -> framed,
masked encoder inputs.

Pretraining reads the language model's token stream (documents through
`LanguageModelPreprocessor.document_ids`, packed into blocks); this frames
each block as `[CLS] block [SEP]` and masks it with keras-hub's
`MaskedLMMaskGenerator`, as BERT does.

Example:
    preprocessor = MaskedLMPreprocessor(tokenizer, sequence_length=128, mask_selection_rate=0.15)
    inputs, mask_ids, mask_weights = preprocessor.training_example(blocks)  # blocks: int32[batch, 126]
"""

from __future__ import annotations

import tensorflow as tf


class MaskedLMPreprocessor:
    """Blocks of ids -> BERT masked-LM inputs, the role of keras-hub's
    `MaskedLMPreprocessor` (which also tokenizes and packs; here the text
    was tokenized and packed into blocks before, by the pretraining
    corpus's token stream).

    Of the block's tokens, `mask_selection_rate` are chosen (never [CLS],
    [SEP] or padding); 80% of those become [MASK], 10% a random token and
    10% stay, keras-hub's defaults.

    Args:
        tokenizer: the run's `WordPieceTokenizer` (it has [CLS], [SEP] and
            [MASK]; another kind raises a `UserError`).
        sequence_length: the encoder's window (`model.seq_len`): blocks are
            two ids shorter, leaving room for [CLS] and [SEP].
        mask_selection_rate: the share of tokens masked (`train.mask_rate`).

    Example:
        preprocessor = MaskedLMPreprocessor(tokenizer, sequence_length=8, mask_selection_rate=0.25)
        inputs, mask_ids, mask_weights = preprocessor.training_example(tf.constant([[6, 7, 8, 6, 7, 8]]))
        inputs["token_ids"]       # [[3, ..., 4]]: [CLS] the masked block [SEP]
        inputs["mask_positions"]  # where mask_ids (the original ids) were; mask_weights: 1 on real ones
    """

    def __init__(self, tokenizer, sequence_length: int, mask_selection_rate: float):
        import keras_hub

        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self.cls_id, self.sep_id, self.mask_id = (tokenizer.special_id(t) for t in ("[CLS]", "[SEP]", "[MASK]"))
        self.masker = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size=tokenizer.vocabulary_size, mask_selection_rate=mask_selection_rate,
            mask_token_id=self.mask_id,
            mask_selection_length=max(1, int(round(sequence_length * mask_selection_rate * 1.25))),
            unselectable_token_ids=[tokenizer.pad_id, self.cls_id, self.sep_id],
        )

    @tf.autograph.experimental.do_not_convert  # keras-hub's masker and TF Text need no AutoGraph rewrite
    def training_example(self, blocks):
        """A batch of blocks (int32[batch, sequence_length - 2]) -> (inputs,
        mask_ids, mask_weights): inputs hold `token_ids` (framed, masked),
        `segment_ids`, `padding_mask` and `mask_positions`; mask_ids are the
        original ids at those positions, weighted 1 where a position is real."""
        n = tf.shape(blocks)[0]
        framed = tf.concat([tf.fill([n, 1], self.cls_id), blocks, tf.fill([n, 1], self.sep_id)], axis=1)
        masked = self.masker(framed)
        inputs = {
            "token_ids": masked["token_ids"],
            "segment_ids": tf.zeros_like(framed),
            "padding_mask": tf.ones_like(framed, tf.bool),
            "mask_positions": masked["mask_positions"],
        }
        return inputs, masked["mask_ids"], masked["mask_weights"]
