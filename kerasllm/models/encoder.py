"""BERT-style encoder and its two heads: masked-LM pretraining and answer spans.

The encoder is keras-hub's `BertBackbone` (token + position + segment
embeddings, then `TransformerEncoder` layers) sized from our `ModelConfig`
and the tokenizer's vocabulary. Pretraining puts keras-hub's `MaskedLMHead`
on it (tied to the token embedding, via `BertMaskedLM`); question answering
puts a span head on the same backbone, so a fine-tuning run can load the
pretrained backbone's weights as they are.

Example:
    backbone = build_encoder(model_config, tokenizer.vocabulary_size)
    qa = SpanModel(backbone)
    start_logits, end_logits = qa({"token_ids": ids, "segment_ids": seg, "padding_mask": mask})
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np

# Logit given to padding positions, so they never win a softmax or a span.
_MASKED = -1e9
_WINDOW_INPUTS = ("token_ids", "segment_ids", "padding_mask")


def num_segments(config) -> int:
    """Question, context, and (with `question_match`) context tokens that
    occur in the question.

    Args:
        config: a `ModelConfig`.

    Example:
        num_segments(ModelConfig(kind="encoder", head="span", question_match=True))  # 3
    """
    return 3 if config.question_match else 2  # config validation allows it for the span head only


def build_encoder(config, vocabulary_size: int, dtype: str | None = None) -> keras_hub.models.BertBackbone:
    """A BertBackbone over windows of `config.seq_len` tokens.

    Args:
        config: a `ModelConfig` (`kind: encoder`): sizes from `num_layers`,
            `num_heads`, `hidden_dim`, `intermediate_dim`, `dropout` and
            `seq_len`; segments from `question_match`.
        vocabulary_size: the WordPiece tokenizer's `vocabulary_size`.
        dtype: a Keras dtype policy name, or None for the global policy.

    Example:
        from kerasllm.config import ModelConfig

        config = ModelConfig(kind="encoder", head="span", num_layers=1, num_heads=2, hidden_dim=32,
                             intermediate_dim=64, seq_len=64)
        backbone = build_encoder(config, vocabulary_size=200)
    """
    return keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=config.intermediate_dim,
        dropout=config.dropout,
        max_sequence_length=config.seq_len,
        num_segments=num_segments(config),
        dtype=dtype,
    )


def build_masked_lm(backbone: keras_hub.models.BertBackbone) -> keras_hub.models.BertMaskedLM:
    """Masked-LM pretraining model: inputs token_ids, segment_ids,
    padding_mask and mask_positions; logits over the vocabulary at the
    masked positions (head tied to the token embedding).

    Under mixed_bfloat16 the head runs in float32: keras-hub's MaskedLMHead
    adds its float32 bias to bfloat16 logits and fails (related:
    keras-team/keras-hub#1195; tests/test_encoder.py shows whether it still
    does). Its inner dense layer and the tied embedding's matmul keep
    bfloat16; the gathered positions, the bias and the logits are float32.

    Args:
        backbone: a `BertBackbone` from `build_encoder`.

    Example:
        import dataclasses

        mlm = build_masked_lm(build_encoder(config, vocabulary_size=200))
        logits = mlm(example_input(dataclasses.replace(config, head="masked_lm")))  # (1, 2, 200)
    """
    model = keras_hub.models.BertMaskedLM(backbone)
    if model.masked_lm_head.dtype_policy.compute_dtype != "float32":
        model.masked_lm_head.dtype_policy = "float32"
    return model


@keras.saving.register_keras_serializable(package="kerasllm")
class SpanModel(keras.Model):
    """Start and end logits of the answer span for every window position
    (padding positions get a very low logit); position 0, `[CLS]`, stands
    for "the answer is not in this window". With `question_match`, context
    tokens that occur in the question get segment 2 (`mark_question_matches`)
    inside the model, so training, evaluation and exports all see it.

    Args:
        backbone: a `BertBackbone` from `build_encoder` (pretrained weights
            load into it unchanged), or a pretrained keras-hub encoder
            backbone (`BertBackbone`, `DistilBertBackbone`: it is given only
            the inputs it takes; DistilBERT has no segment ids).
        question_match: mark context tokens that occur in the question
            (the backbone needs 3 segments, see `num_segments`).

    Example:
        qa = SpanModel(build_encoder(config, vocabulary_size=200))
        start_logits, end_logits = qa(example_input(config))  # each (1, 64), float32
    """

    def __init__(self, backbone: keras_hub.models.BertBackbone, question_match: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.question_match = question_match
        # What the backbone reads of a window (DistilBERT: no segment ids).
        inputs = getattr(backbone, "input", None)
        self.backbone_inputs = tuple(inputs) if isinstance(inputs, dict) else _WINDOW_INPUTS
        # float32 logits also under mixed precision: they feed a softmax
        # and a sum of two logits that ranks spans.
        self.span_head = keras.layers.Dense(2, dtype="float32", name="span_head")

    def call(self, inputs, training=False):
        features = {k: inputs[k] for k in _WINDOW_INPUTS}
        if self.question_match:
            features["segment_ids"] = mark_question_matches(**features)
        features = {k: v for k, v in features.items() if k in self.backbone_inputs}
        hidden = self.backbone(features, training=training)
        if isinstance(hidden, dict):  # BERT's also has a pooled output; DistilBERT's is the sequence alone
            hidden = hidden["sequence_output"]
        logits = self.span_head(hidden)
        mask = keras.ops.cast(inputs["padding_mask"], "bool")
        start, end = logits[..., 0], logits[..., 1]
        return keras.ops.where(mask, start, _MASKED), keras.ops.where(mask, end, _MASKED)

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone),
                "question_match": self.question_match}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def mark_question_matches(token_ids, segment_ids, padding_mask):
    """Segment ids with 2 on context tokens (segment 1) whose id also occurs
    among the question's tokens. The question is segment 0 between `[CLS]`
    (position 0) and its `[SEP]` (the last segment-0 position before the
    context), so neither special token matches anything.

    Args:
        token_ids: int[batch, seq] window ids.
        segment_ids: int[batch, seq], 0 question, 1 context.
        padding_mask: bool or int[batch, seq], true on real tokens.

    Example:
        # [CLS] a b [SEP] b c [SEP]
        mark_question_matches(tf.constant([[3, 7, 8, 4, 8, 9, 4]]), tf.constant([[0, 0, 0, 0, 1, 1, 1]]),
                              tf.ones([1, 7], tf.bool))  # [[0, 0, 0, 0, 2, 1, 1]]
    """
    segments = keras.ops.cast(segment_ids, "int32")
    in_use = keras.ops.cast(padding_mask, "bool")
    positions = keras.ops.arange(keras.ops.shape(segments)[1])[None, :]
    next_segment = keras.ops.concatenate([segments[:, 1:], keras.ops.ones_like(segments[:, :1])], axis=1)
    question = (segments == 0) & (next_segment == 0) & (positions > 0) & in_use
    same = keras.ops.equal(token_ids[:, :, None], token_ids[:, None, :])  # [batch, position, question position]
    match = keras.ops.any(same & question[:, None, :], axis=-1) & (segments == 1) & in_use
    return keras.ops.where(match, 2, segments)


def span_losses() -> list:
    """Cross-entropy of the start and of the end position (Keras adds them).

    Example:
        qa.compile(optimizer="adam", loss=span_losses())
    """
    return [keras.losses.SparseCategoricalCrossentropy(from_logits=True)] * 2


def example_input(config, mask_positions: bool = False) -> dict:
    """A one-window batch of zeros in the model's input format (to build it).

    Args:
        config: a `ModelConfig` (`kind: encoder`).
        mask_positions: add the `mask_positions` input of a masked-LM model.

    Example:
        sorted(example_input(config))  # ['padding_mask', 'segment_ids', 'token_ids']
    """
    ids = np.zeros((1, config.seq_len), "int32")
    inputs = {"token_ids": ids, "segment_ids": ids, "padding_mask": ids + 1}
    if mask_positions:
        inputs["mask_positions"] = ids[:, :2]
    return inputs


def masked_lm_model(config, vocabulary_size: int, dtype: str | None = None, build: bool = True):
    """A masked-LM pretraining model (keras-hub's `BertMaskedLM`) on a new encoder.

    Args:
        config: a `ModelConfig` (`kind: encoder`, `head: masked_lm`).
        vocabulary_size: the WordPiece tokenizer's `vocabulary_size`.
        dtype: a Keras dtype policy name, or None for the global policy.
        build: run `example_input` through it, so its weights exist (to
            load a checkpoint into).

    Example:
        mlm = masked_lm_model(ModelConfig(kind="encoder", head="masked_lm", num_layers=1, num_heads=2,
                                          hidden_dim=32, intermediate_dim=64, seq_len=64), vocabulary_size=200)
    """
    model = build_masked_lm(build_encoder(config, vocabulary_size, dtype))
    if build:
        model(example_input(config, mask_positions=True))
    return model


def span_model(config, vocabulary_size: int, dtype: str | None = None, build: bool = True):
    """A question-answering `SpanModel` on a new encoder.

    Args:
        config: a `ModelConfig` (`kind: encoder`, `head: span`).
        vocabulary_size: the WordPiece tokenizer's `vocabulary_size`.
        dtype: a Keras dtype policy name, or None for the global policy.
        build: run `example_input` through it, so its weights exist (to
            load a checkpoint into).

    Example:
        from kerasllm.config import ModelConfig

        config = ModelConfig(kind="encoder", head="span", num_layers=1, num_heads=2, hidden_dim=32,
                             intermediate_dim=64, seq_len=64)
        qa = span_model(config, vocabulary_size=200)  # a built SpanModel
    """
    backbone = build_encoder(config, vocabulary_size, dtype)
    model = SpanModel(backbone, question_match=config.question_match, name="span_model")
    if build:
        model(example_input(config))
    return model


def span_model_on(backbone, seq_len: int) -> SpanModel:
    """A built `SpanModel` (a new span head) on an existing encoder backbone,
    e.g. a pretrained keras-hub `BertBackbone` or `DistilBertBackbone`.

    Args:
        backbone: the encoder (its weights are kept).
        seq_len: window length to build the model with.

    Example:
        backbone = keras_hub.models.Backbone.from_preset("checkpoints/bert")
        qa = span_model_on(backbone, seq_len=384)
        start_logits, end_logits = qa(example_input(config))
    """
    model = SpanModel(backbone, name="span_model")
    ids = np.zeros((1, seq_len), "int32")
    model({"token_ids": ids, "segment_ids": ids, "padding_mask": ids + 1})
    return model
