"""Fine-tuning controls: LoRA adapters and frozen weights (`train.lora_rank`,
`train.lora_alpha`, `train.freeze`).

Both act on the model's keras-hub backbone (`model.backbone`, a
`keras_hub.models.Backbone`: our GPT and seq2seq backbones, keras-hub's
BERT, a pretrained preset), so they work the same for every Transformer
task. LoRA is keras-hub's `Backbone.enable_lora`: it freezes every backbone
weight and gives each attention query and value projection (the layers
named by `Backbone.default_lora_layer_names`) a trainable low-rank update
`lora_kernel_a @ lora_kernel_b`, scaled by `lora_alpha / lora_rank` (Keras'
`EinsumDense.enable_lora`). Layers the task puts on top of the backbone (a
span head, a masked-LM head) keep training: they are new to the task.

Why this sits with the models, not the trainer: loading a trained run
(`kerasllm.loaded_run`, below training) must rebuild the same adapted model
before it reads the weights, and export merges from it.

Example:
    apply(model, config.train)       # after the weights it starts from are loaded
    describe(model)                  # "1,024 of them trained (LoRA rank 4 on 2 layers)"
"""

from __future__ import annotations

import keras
import keras_hub

from kerasllm.compat import lora_parts, save_lora_unmerged, sublayers
from kerasllm.config import parse_freeze
from kerasllm.errors import UserError

# The attributes that name a backbone's Transformer blocks, one stack or an
# encoder's and a decoder's: ours, keras-hub's BERT/GPT-2/Llama/Gemma
# (`transformer_layers`) and its BART (`encoder_transformer_layers`, ...).
_BLOCK_STACKS = (
    ("transformer_layers",),
    ("encoder_layers", "decoder_layers"),
    ("encoder_transformer_layers", "decoder_transformer_layers"),
)


def backbone_of(model, key: str = "train.lora_rank"):
    """The keras-hub backbone of `model`.

    Args:
        model: a task model (`GPTCausalLM`, `Seq2SeqTranslator`,
            `BertMaskedLM`, `SpanModel`, ...).
        key: the config key that needs it, for the error message.

    Raises:
        UserError: the model has no keras-hub backbone (the LSTM).

    Example:
        backbone_of(lm).enable_lora(4)
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, keras_hub.models.Backbone):
        raise UserError(f"{key}: a {type(model).__name__} has no keras-hub Transformer backbone to fine-tune")
    return backbone


def apply(model, train_config) -> None:
    """Applies `train.lora_rank` (with `train.lora_alpha`) and `train.freeze`
    to a built model: call it after the weights the run starts from are in
    (`train.init_from`, a preset) and before a checkpoint of the run is
    loaded, under the strategy's scope (LoRA creates variables), before
    the optimizer is built.

    Args:
        model: a built task model with a keras-hub `backbone`.
        train_config: the run's `TrainConfig`.

    Raises:
        UserError: no backbone, or more blocks to freeze than it has.

    Example:
        apply(model, config.train)
        [v.path for v in model.trainable_variables]  # the lora_kernel_a/b only, with lora_rank
    """
    t = train_config
    if t.lora_rank:
        enable_lora(backbone_of(model), t.lora_rank, t.lora_alpha or None)
    frozen = parse_freeze(t.freeze, "train.freeze")
    if frozen.embeddings or frozen.layers:
        freeze(backbone_of(model, "train.freeze"), frozen.embeddings, frozen.layers)


def enable_lora(backbone, rank: int, alpha: float | None = None) -> list:
    """keras-hub's `backbone.enable_lora(rank)`, then three things it leaves
    out: Keras' `lora_alpha` (keras-hub does not pass it), freezing the
    adapted layers' biases (keras-hub leaves them trainable; LoRA trains the
    adapters only), and checkpoints that hold the adapters.

    Keras saves an adapted layer with its update merged into the kernel and
    no adapters, and loading one zeroes the adapters (deployment files). A
    run's checkpoints must hold the frozen kernel and the adapters as they
    are, or a resumed run would restart its adapters from zero (where their
    gradients are zero too). So each adapted layer saves and loads all its
    variables as any Keras layer does (`compat.save_lora_unmerged`); exports
    merge instead (`kerasllm.export.merge`).

    Args:
        backbone: a built `keras_hub.models.Backbone`.
        rank: the adapters' rank.
        alpha: the update's scale is `alpha / rank`; None: `rank` (scale 1).

    Returns:
        The adapted layers.

    Raises:
        UserError: the backbone has no layer keras-hub adapts.

    Example:
        enable_lora(lm.backbone, 4)  # lm.trainable_variables: 4 per block (query and value: a, b)
    """
    backbone.enable_lora(rank)
    adapted = adapted_layers(backbone)
    if not adapted:
        raise UserError(f"train.lora_rank: {type(backbone).__name__} has no layer named "
                        f"{', '.join(backbone.default_lora_layer_names())} to put LoRA adapters on")
    for layer in adapted:
        if alpha is not None:
            layer.lora_alpha = alpha  # what Keras' enable_lora(rank, lora_alpha) sets; read at each call
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.trainable = False
        save_lora_unmerged(layer)
    return adapted


def adapted_layers(model) -> list:
    """The layers of `model` (or a backbone) with LoRA enabled.

    Example:
        [layer.name for layer in adapted_layers(lm)]  # ["value", "query", ...]
    """
    return [layer for layer in sublayers(model) if getattr(layer, "lora_enabled", False)]


def adapter_variables(model) -> list:
    """The LoRA adapters of `model` (`lora_kernel_a` and `lora_kernel_b` of
    each adapted layer; an adapted `Embedding`'s `lora_embeddings_a/b`).

    Example:
        sum(int(np.prod(v.shape)) for v in adapter_variables(lm))  # the weights LoRA trains
    """
    return [v for layer in adapted_layers(model) for v in lora_parts(layer)[1:]]


def block_stacks(backbone) -> list:
    """The backbone's Transformer blocks, in order, as one list per stack
    (a seq2seq backbone has an encoder's and a decoder's).

    Raises:
        UserError: it keeps its blocks under no name `_BLOCK_STACKS` knows.

    Example:
        [len(stack) for stack in block_stacks(translator.backbone)]  # [2, 2]
    """
    for names in _BLOCK_STACKS:
        stacks = [getattr(backbone, name, None) for name in names]
        if all(stacks):
            return [list(stack) for stack in stacks]
    raise UserError(f"train.freeze: layers:N: {type(backbone).__name__} keeps its Transformer blocks under none of "
                    f"the names {', '.join(n for names in _BLOCK_STACKS for n in names)}")


def embedding_layers(backbone) -> list:
    """The backbone's embedding tables: token, position and segment
    embeddings (a tied output projection is the token embedding).

    Example:
        [layer.name for layer in embedding_layers(lm.backbone)]  # ["token_embedding", "position_embedding"]
    """
    kinds = (keras.layers.Embedding, keras_hub.layers.PositionEmbedding)  # ReversibleEmbedding is an Embedding
    return [layer for layer in sublayers(backbone) if isinstance(layer, kinds)]


def freeze(backbone, embeddings: bool, layers: int) -> None:
    """Makes the embedding tables (`embeddings`) and the first `layers`
    blocks of each stack untrainable.

    Args:
        backbone: a built `keras_hub.models.Backbone`.
        embeddings: freeze `embedding_layers(backbone)`.
        layers: how many blocks of each stack to freeze (0: none).

    Raises:
        UserError: `layers` is more than a stack has.

    Example:
        freeze(lm.backbone, embeddings=True, layers=1)
    """
    if embeddings:
        for layer in embedding_layers(backbone):
            layer.trainable = False
    if layers:
        for stack in block_stacks(backbone):
            if layers > len(stack):
                raise UserError(f"train.freeze: layers:{layers} is more than the model's {len(stack)} "
                                "Transformer block(s)")
            for block in stack[:layers]:
                block.trainable = False


def describe(model) -> str:
    """How many of the model's parameters train, for the trainer's "Model:"
    line; "" when all of them do.

    Example:
        describe(lm)  # "1,024 of them trained (LoRA rank 4 on 2 layers)"
    """
    total = model.count_params()
    trained = sum(int(keras.ops.size(v)) for v in model.trainable_variables)
    if trained == total:
        return ""
    adapted = adapted_layers(model)
    how = f" (LoRA rank {adapted[0].lora_rank} on {len(adapted)} layers)" if adapted else ""
    return f"{trained:,} of them trained{how}"
