"""keras-hub's pretrained architectures as kerasllm models.

The architecture and weights are keras-hub's (its backbones, its causal-LM
tasks with their cached decoding, its converters of Hugging Face
checkpoints); this module only fits them to kerasllm's model interface:
token ids in, logits out (`HubCausalLM`), built from a checkpoint's
architecture (`backbone_from_checkpoint`) or from the architecture a run
saved (`backbone_from_config`), with the checkpoint's weights copied in
(`load_checkpoint_weights`) and a learned position table cut to a shorter
`model.seq_len`.

Example:
    backbone = backbone_from_checkpoint("checkpoints/gpt2", family, seq_len=256)
    lm = HubCausalLM.wrap(backbone, family)
    load_checkpoint_weights(lm.backbone, "checkpoints/gpt2", family)
    logits = lm(tf.constant([[50256, 15496]]))  # (1, 2, 50257)
"""

from __future__ import annotations

import keras
import keras_hub
from keras import ops

from kerasllm.models.weights import copy_weights


def backbone_from_checkpoint(path: str, family, seq_len: int | None = None, dtype=None):
    """The checkpoint's backbone architecture, without its weights.

    Args:
        path: a Hugging Face directory or keras-hub preset (see
            `kerasllm.pretrained.inspect`).
        family: its `kerasllm.pretrained.Family`.
        seq_len: for a family with a learned position table, the positions
            to keep (None: all of the checkpoint's).
        dtype: a Keras dtype policy name, or None for the global policy.

    Example:
        backbone = backbone_from_checkpoint("checkpoints/gpt2", FAMILIES["gpt2"], seq_len=128)
        backbone.max_sequence_length  # 128
    """
    overrides = {} if seq_len is None or not family.hub_positions else {family.hub_positions: seq_len}
    if dtype is not None:
        overrides["dtype"] = dtype
    return keras_hub.models.Backbone.from_preset(str(path), load_weights=False, **overrides)


def backbone_from_config(config: dict, family, dtype=None):
    """A backbone from the `get_config()` a run saved (`HubCausalLM.architecture`).

    Example:
        backbone = backbone_from_config(json.loads(run_file.read_text()), FAMILIES["gpt2"])
    """
    cls = getattr(keras_hub.models, family.backbone)
    config = dict(config)
    if dtype is not None:
        config["dtype"] = dtype
    return cls.from_config(config)


def load_checkpoint_weights(backbone, path: str, family) -> tuple[int, list]:
    """Copies a checkpoint's weights into `backbone` (built), converted by
    keras-hub; a position table longer than the backbone's is cut to its
    first rows (`kerasllm.models.weights.copy_weights`). Returns (weights
    copied, paths of the tables cut).

    Example:
        copied, cut = load_checkpoint_weights(lm.backbone, "checkpoints/gpt2", family)
    """
    source = keras_hub.models.Backbone.from_preset(str(path), dtype="float32")
    return len(backbone.weights), copy_weights(source.weights, backbone.weights, f"train.init_from: {path}")


@keras.saving.register_keras_serializable(package="kerasllm")
class HubCausalLM(keras_hub.models.CausalLM):
    """Token ids (batch, seq) -> next-token logits of a keras-hub causal LM
    (`GPT2CausalLM`, `Llama3CausalLM`, ...), which keep their inputs as
    {"token_ids", "padding_mask"}; kerasllm's packed blocks have no
    padding, so the mask is all ones. Cached decoding is the keras-hub
    task's own `generate_step`, with this model's `sampler`.

    Args:
        inner: the keras-hub `CausalLM`, without a preprocessor.
        context: the most positions a sequence may have (None: unbounded).

    Example:
        lm = HubCausalLM.wrap(backbone_from_checkpoint(path, family), family)
        lm(tf.constant([[1, 2, 3]])).shape  # (1, 3, vocabulary)
    """

    def __init__(self, inner, context=None, **kwargs):
        self.inner = inner
        self.backbone = inner.backbone
        self.preprocessor = None
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = ops.ones_like(token_ids, dtype="bool")
        logits = inner({"token_ids": token_ids, "padding_mask": padding_mask})
        super().__init__(inputs=token_ids, outputs=logits, **kwargs)
        self.context = context

    @classmethod
    def wrap(cls, backbone, family, context=None) -> "HubCausalLM":
        """The family's keras-hub causal LM over `backbone`, wrapped.

        Example:
            lm = HubCausalLM.wrap(backbone, FAMILIES["llama3"], context=256)
        """
        inner = getattr(keras_hub.models, family.task)(backbone=backbone, preprocessor=None)
        return cls(inner, context=context)

    def generate_step(self, inputs, stop_token_ids=None):
        """keras-hub's cached decoding of the wrapped task, with `self.sampler`."""
        self.inner.sampler = self.sampler
        return self.inner.generate_step(inputs, stop_token_ids=stop_token_ids)

    def get_config(self):
        return {"inner": keras.saving.serialize_keras_object(self.inner), "context": self.context,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("inner"))
        return cls(inner, **config)


def seq2seq_lm_on(backbone, family):
    """The family's keras-hub encoder-decoder task (`BartSeq2SeqLM`) over
    `backbone`, without a preprocessor: kerasllm's translation inputs
    ({"encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
    "decoder_padding_mask"} -> logits) are already keras-hub's, and its
    `generate_step` (cached self- and cross-attention) decodes with the
    model's `sampler`, as kerasllm's own `Seq2SeqTranslator` does.

    Example:
        model = seq2seq_lm_on(backbone_from_checkpoint("checkpoints/bart-base", family, seq_len=64), family)
    """
    return getattr(keras_hub.models, family.task)(backbone=backbone, preprocessor=None)
