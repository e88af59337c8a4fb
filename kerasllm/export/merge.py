"""A LoRA run's model with its adapters merged into plain weights, for export.

A served model has no use for the adapters: each adapted kernel becomes
`kernel + lora_alpha / lora_rank * lora_kernel_a @ lora_kernel_b` (what the
adapted layer computes at every call), in a model built without LoRA, so
the SavedModel holds the same variables as any other run's and computes
the same outputs.

Example:
    lm = merge_lora(load_run("runs/tiny-lora"), "runs/tiny-lora")
    finetune.adapted_layers(lm.model)  # []
"""

from __future__ import annotations

import dataclasses

from keras import ops

from kerasllm import task_registry
from kerasllm.compat import lora_parts
from kerasllm.models import finetune
from kerasllm.run_dir import RunDir


def merge_lora(loaded, run_dir: str):
    """`loaded` (a `LoadedRun`) with its model replaced by one built without
    LoRA that holds `merged_weights` of the adapted one; `loaded` itself
    when its model has no adapters.

    Args:
        loaded: a `LoadedRun` (`kerasllm.loaded_run.load_run`).
        run_dir: its run directory (the task rebuilds the plain model from it).

    Example:
        merged = merge_lora(load_run("runs/tiny-lora"), "runs/tiny-lora")
        merged.model(ids)  # the adapted model's logits, from plain weights
    """
    if not finetune.adapted_layers(loaded.model):
        return loaded
    plain, _, _ = task_registry.for_model(loaded.config.model).load_model(loaded.config, RunDir(run_dir))
    values = merged_weights(loaded.model)
    shapes = [tuple(v.shape) for v in plain.weights]
    if shapes != [tuple(v.shape) for v in values]:  # a model whose variables are not the adapted one's, in order
        raise RuntimeError(f"cannot merge LoRA: the plain model has {len(shapes)} variables, the adapted one "
                           f"{len(values)} besides its adapters, and their shapes differ")
    plain.set_weights(values)
    return dataclasses.replace(loaded, model=plain)


def merged_weights(model) -> list:
    """The values of `model`'s variables other than its LoRA adapters, in
    the order of `model.weights` (the order the same model built without
    LoRA has), each adapted kernel with its update merged in.

    The merged kernel follows Keras' own formula (the `kernel` property of
    `Dense` and `EinsumDense`, `embeddings` of `Embedding`, in
    keras/src/layers/core/): base + (lora_alpha / lora_rank) * A @ B. It is
    computed here in the base variable's dtype rather than read from that
    property, which casts to the layer's compute dtype (bfloat16 under
    mixed precision) and would round the exported weights. Keras' merging
    save (`save_own_variables`) is not used because a run's adapted layers
    save their adapters unmerged (`compat.save_lora_unmerged`).

    Args:
        model: a model with LoRA enabled (`finetune.apply`).

    Returns:
        A list of numpy arrays, for `plain_model.set_weights`.

    Example:
        plain.set_weights(merged_weights(adapted))  # plain(ids) == adapted(ids)
    """
    merged = {}
    for layer in finetune.adapted_layers(model):
        base, a, b = lora_parts(layer)  # the public `kernel` is the merged value, in the compute dtype
        update = (layer.lora_alpha / layer.lora_rank) * ops.matmul(a, b)
        merged[id(base)] = ops.add(base, ops.cast(update, base.dtype))
    adapters = {id(v) for v in finetune.adapter_variables(model)}
    return [ops.convert_to_numpy(merged.get(id(v), v)) for v in model.weights if id(v) not in adapters]
