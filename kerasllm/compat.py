"""Every private Keras, keras-hub and TensorFlow API that kerasllm uses.

Upstream may rename or change these at any release without notice, so they
are reached only through this module, and tests/test_compat.py holds a
sentinel test for each: it fails when the private name or its meaning
changes, naming the function here to fix. Nothing else in kerasllm touches
`keras.src`, `keras_hub.src` or a private attribute of an upstream object.

Contents:
- `decoder_sublayers`, `attention_scale`: the parts of a keras-hub
  `TransformerDecoder` that the cached decoding step calls one by one
  (kerasllm/models/gpt.py).
- `cross_attention_sublayers`: a `TransformerDecoder`'s cross-attention and
  its layer norm, whose weights `kerasllm explain` reads
  (kerasllm/inference/attention.py).
- `learning_rate_schedule`: the schedule object a Keras optimizer keeps.
- `start_progbar_epoch`: what Keras' `ProgbarLogger` does at an epoch's
  start, without its `Epoch x/y` line (kerasllm/training/callbacks.py).
- `in_multi_worker_mode`: whether a tf.distribute strategy spans workers.
- `wordpiece_split_patterns`: keras-hub's word-split regexes.
- `hub_preset_file`, `hub_preset_json`: keras-hub's download-and-cache of
  one file of a `hf://` or `kaggle://` handle or a local preset
  (kerasllm/pretrained.py, kerasllm/training/pretrained_encoders.py).
- `keras_slice_update_replaced`: swaps the function Keras' TensorFlow
  backend runs for `keras.ops.slice_update` (kerasllm/export/xla_free.py).
- `apply_distribution_fixes`: patches Keras' TensorFlow trainer for
  multi-worker `fit` (keras-team/keras#20585).
- `sublayers`, `lora_parts`, `save_lora_unmerged`: a backbone's
  nested layers, a LoRA-adapted layer's frozen base, and checkpoints that
  keep its adapters (kerasllm/models/finetune.py, kerasllm/export/merge.py).

This module imports no other kerasllm module (it sits in the lowest layer of
the import contract in setup.cfg), so any layer may use it.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import tensorflow as tf


class DecoderSublayers(NamedTuple):
    """The sublayers of a keras-hub `TransformerDecoder` (no cross-attention),
    in the order its call runs them."""

    self_attention_norm: object  # LayerNormalization before self-attention
    self_attention: object  # a keras MultiHeadAttention (keras-hub's cached subclass)
    feedforward_norm: object  # LayerNormalization before the feedforward block
    feedforward_intermediate: object  # Dense, hidden -> intermediate_dim, with the activation
    feedforward_output: object  # Dense, intermediate_dim -> hidden


def decoder_sublayers(layer) -> DecoderSublayers:
    """The sublayers of a built keras-hub `TransformerDecoder`.

    keras-hub keeps them as private attributes; the cached decoding step in
    kerasllm/models/gpt.py calls them one by one with a head-major cache.

    Args:
        layer: a built `keras_hub.layers.TransformerDecoder` without
            cross-attention, with `normalize_first=True`.

    Example:
        parts = decoder_sublayers(model.get_layer("transformer_layer_0"))
        h = parts.self_attention_norm(x)
    """
    return DecoderSublayers(
        self_attention_norm=layer._self_attention_layer_norm,
        self_attention=layer._self_attention_layer,
        feedforward_norm=layer._feedforward_layer_norm,
        feedforward_intermediate=layer._feedforward_intermediate_dense,
        feedforward_output=layer._feedforward_output_dense,
    )


class CrossAttentionSublayers(NamedTuple):
    """The cross-attention block of a keras-hub `TransformerDecoder` built
    with an encoder sequence; it runs after self-attention."""

    cross_attention_norm: object  # LayerNormalization before cross-attention
    cross_attention: object  # a keras MultiHeadAttention (keras-hub's cached subclass)


def cross_attention_sublayers(layer) -> CrossAttentionSublayers:
    """The cross-attention sublayers of a built keras-hub `TransformerDecoder`.

    keras-hub keeps them as private attributes, and its decoder returns no
    attention scores; kerasllm/inference/attention.py calls them with
    `return_attention_scores=True`.

    Args:
        layer: a built `keras_hub.layers.TransformerDecoder` called with an
            encoder sequence, with `normalize_first=True`.

    Example:
        parts = cross_attention_sublayers(translator.backbone.decoder_layers[0])
        _, scores = parts.cross_attention(parts.cross_attention_norm(x), encoded, return_attention_scores=True)
    """
    if layer._cross_attention_layer is None:
        raise ValueError(f"{layer.name} has no cross-attention (it was built without an encoder sequence)")
    return CrossAttentionSublayers(
        cross_attention_norm=layer._cross_attention_layer_norm,
        cross_attention=layer._cross_attention_layer,
    )


def attention_scale(attention) -> float:
    """The factor Keras' `MultiHeadAttention` scales query x key logits by
    (1 / sqrt(key_dim)), exactly as Keras computed it.

    Args:
        attention: a built `keras.layers.MultiHeadAttention`.

    Example:
        logits = ops.einsum("bhtd,bhds->bhts", query, keys) * attention_scale(attention)
    """
    return attention._inverse_sqrt_key_dim


def learning_rate_schedule(optimizer):
    """The schedule (or variable) a Keras optimizer was given as its
    learning rate; `optimizer.learning_rate` is only the current value.

    Args:
        optimizer: a `keras.optimizers.Optimizer`.

    Example:
        schedule = learning_rate_schedule(model.optimizer)
    """
    return optimizer._learning_rate


def start_progbar_epoch(logger) -> None:
    """A new progress bar for the epoch, as `ProgbarLogger.on_epoch_begin`
    makes it, without printing its `Epoch x/y` header.

    Args:
        logger: a `keras.callbacks.ProgbarLogger` (or subclass) inside `fit`.

    Example:
        def on_epoch_begin(self, epoch, logs=None):
            start_progbar_epoch(self)
            print(f"Epoch {epoch + 1} of the whole run")
    """
    logger._reset_progbar()
    logger._maybe_init_progbar()


def in_multi_worker_mode(strategy) -> bool:
    """Whether `strategy` runs across several workers (TF's own test, which
    `MultiWorkerMirroredStrategy` with one worker answers False).

    Args:
        strategy: a `tf.distribute.Strategy`.

    Example:
        if in_multi_worker_mode(tf.distribute.get_strategy()): ...
    """
    return strategy.extended._in_multi_worker_mode()


def wordpiece_split_patterns(split_on_cjk: bool) -> tuple:
    """keras-hub's WordPiece word-split regexes: (delimiters, kept delimiters).

    keras-hub first pads CJK characters with spaces and then splits; with CJK
    in both patterns, splitting the unpadded text gives the same words and
    keeps byte offsets into the text the tokenizer saw
    (kerasllm/data/preprocessors/qa_features.py).

    Args:
        split_on_cjk: the tokenizer's `split_on_cjk`.

    Example:
        delimiters, kept = wordpiece_split_patterns(tokenizer.split_on_cjk)
    """
    from keras_hub.src.tokenizers import word_piece_tokenizer as kh

    if split_on_cjk:
        return kh.WHITESPACE_PUNCTUATION_AND_CJK_REGEX, kh.PUNCTUATION_AND_CJK_REGEX
    return kh.WHITESPACE_AND_PUNCTUATION_REGEX, kh.PUNCTUATION_REGEX


def hub_preset_file(handle: str, filename: str) -> str:
    """The local path of one file of a keras-hub preset handle.

    keras-hub downloads `hf://` and `kaggle://` handles into its own cache
    (or finds them there) with a function it does not export; kerasllm uses
    it so that a handle given to `train.init_from` or `--checkpoint` is
    fetched and cached exactly as `from_preset` would.

    Args:
        handle: an `hf://owner/name` or `kaggle://owner/model/framework/variant` handle.
        filename: a file of that preset, e.g. "config.json".

    Raises:
        whatever keras-hub raises when the handle cannot be fetched (offline,
        unknown repository, no access).

    Example:
        config_path = hub_preset_file("hf://openai-community/gpt2", "config.json")
    """
    from keras_hub.src.utils.preset_utils import get_file

    return get_file(handle, filename)


def hub_preset_json(preset: str, filename: str):
    """One JSON file of a keras-hub preset (a directory or a handle, fetched
    as `from_preset` fetches it), or None when the preset has no such file.

    Args:
        preset: a checkpoint directory or an `hf://` / `kaggle://` handle.
        filename: e.g. "tokenizer.json".

    Example:
        hub_preset_json("checkpoints/bert", "tokenizer_config.json")  # {"do_lower_case": True, ...}
    """
    from keras_hub.src.utils.preset_utils import check_file_exists, load_json

    return load_json(preset, filename) if check_file_exists(preset, filename) else None


@contextlib.contextmanager
def keras_slice_update_replaced(slice_update: Callable):
    """Within this block, `keras.ops.slice_update` runs `slice_update` on the
    TensorFlow backend (Keras dispatches to its backend module's function,
    looked up at call time).

    Args:
        slice_update: `(inputs, start_indices, updates) -> tensor`.

    Example:
        with keras_slice_update_replaced(my_slice_update):
            concrete = tf.function(fn).get_concrete_function(spec)
    """
    from keras.src.backend.tensorflow import core as keras_tf_core

    original = keras_tf_core.slice_update
    keras_tf_core.slice_update = slice_update
    try:
        yield
    finally:
        keras_tf_core.slice_update = original


# Multi-worker `fit` (keras-team/keras#20585: `fit` fails under
# MultiWorkerMirroredStrategy). Two places in Keras' TensorFlow trainer
# assume a single worker:
#
# 1. `_maybe_symbolic_build` pulls the first batch out of the training data
#    and, when it is distributed, averages it across replicas with
#    `strategy.reduce` only to learn shapes and dtypes. Across workers that
#    is a collective over integer token ids whose shapes differ from worker
#    to worker; on one machine it still iterates the pipeline once more
#    (filling shuffle buffers) and moves the shuffled order on by one pass,
#    so the same run under `mirrored` sees other batches than on one device.
# 2. `reduce_per_replica` reduces every per-replica result with
#    `strategy.reduce("MEAN", value, axis=0)` in multi-worker mode; the
#    step's loss and metrics are scalars, which have no axis 0.
#
# `apply_distribution_fixes()` replaces both, once per process: the symbolic
# build reads the dataset's element spec (no batch taken, no collective), and
# multi-worker mean reductions of scalars use `axis=None`. Everything else
# stays Keras'. tests/test_distributed.py fails when either replacement stops
# being needed.

_distribution_fixes_applied = False


def _symbolic_build_from_spec(self, iterator=None, data_batch=None):
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        # A dataset distributed per worker has per-replica specs; any
        # replica's spec gives the shapes and dtypes.
        data_batch = tf.nest.map_structure(lambda s: s._value_specs[0] if hasattr(s, "_value_specs") else s, spec)
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_per_replica(original: Callable) -> Callable:
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):

            def reduce(value):
                if tf_trainer._is_per_replica_instance(value) or isinstance(value, tf.Tensor):
                    rank = value.values[0].shape.rank if tf_trainer._is_per_replica_instance(value) else value.shape.rank
                    return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)
                return value

            return tf.nest.map_structure(reduce, values)
        return original(values, strategy, reduction)

    return reduce_per_replica


def apply_distribution_fixes() -> None:
    """Patches Keras' TensorFlow trainer so that `fit` works under
    multi-worker strategies and takes no batch for its symbolic build (see
    the comment above). Applied once per process; later calls do nothing.

    Example:
        apply_distribution_fixes()
        model.fit(dataset)  # under tf.distribute.MultiWorkerMirroredStrategy
    """
    global _distribution_fixes_applied
    if not _distribution_fixes_applied:
        from keras.src.backend.tensorflow import trainer as tf_trainer

        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _symbolic_build_from_spec
        tf_trainer.reduce_per_replica = _reduce_per_replica(tf_trainer.reduce_per_replica)
        _distribution_fixes_applied = True


def sublayers(layer) -> list:
    """Every layer nested in `layer` (not `layer` itself), outer ones first:
    Keras' `Layer._flatten_layers`, the walk keras-hub's
    `Backbone.enable_lora` makes over a backbone (kerasllm/models/finetune.py
    finds the layers it adapted, the embeddings and blocks to freeze).

    Args:
        layer: a Keras layer or model.

    Example:
        [l.name for l in sublayers(backbone) if getattr(l, "lora_enabled", False)]  # ["value", "query", ...]
    """
    return list(layer._flatten_layers(include_self=False))


class LoraParts(NamedTuple):
    """A LoRA-adapted layer's variables: its update is
    lora_alpha / lora_rank * a @ b, added to `base`."""

    base: object  # the frozen kernel or embedding table
    a: object
    b: object


def lora_parts(layer) -> LoraParts:
    """The frozen base and the two adapters of a LoRA-adapted `Dense` or
    `EinsumDense` (`_kernel`, `lora_kernel_a`, `lora_kernel_b`) or
    `Embedding` (`_embeddings`, `lora_embeddings_a`, `lora_embeddings_b`).
    The public `kernel` / `embeddings` is the merged value, base +
    lora_alpha / lora_rank * a @ b, cast to the compute dtype
    (kerasllm/export/merge.py merges in the variable's dtype instead).

    Args:
        layer: a Keras layer after `enable_lora`.

    Example:
        lora_parts(query).base.trainable  # False
    """
    if hasattr(layer, "lora_embeddings_a"):
        return LoraParts(layer._embeddings, layer.lora_embeddings_a, layer.lora_embeddings_b)
    return LoraParts(layer._kernel, layer.lora_kernel_a, layer.lora_kernel_b)


def save_lora_unmerged(layer) -> None:
    """Makes a LoRA-adapted layer save and load every variable as it is, the
    frozen base and the adapters, as any Keras layer without LoRA does
    (`keras.layers.Layer.save_own_variables` / `load_own_variables`, which
    store `layer`'s variables by index).

    Keras' `Dense`, `EinsumDense` and `Embedding` save an adapted layer with
    its update merged into the base and without adapters, and zero the
    adapters when they load one: files for deployment. A training run's
    checkpoints need both parts, or a resumed run restarts its adapters
    from zero (kerasllm/models/finetune.py).

    Args:
        layer: a Keras layer after `enable_lora`.

    Example:
        save_lora_unmerged(query)
        model.save_weights("w.weights.h5")  # holds query's kernel, bias, lora_kernel_a, lora_kernel_b
    """
    import types

    import keras

    layer.save_own_variables = types.MethodType(keras.layers.Layer.save_own_variables, layer)
    layer.load_own_variables = types.MethodType(keras.layers.Layer.load_own_variables, layer)
