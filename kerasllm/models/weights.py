"""Copying one model's weights into another of the same architecture,
where the target may hold fewer positions (a shorter `model.seq_len`).

Used to start a run from a pretrained checkpoint (`kerasllm.models.hub`)
or from another kerasllm run of the same kind (`train.init_from`).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from kerasllm.errors import UserError


def copy_weights(source: list, target: list, where: str) -> list:
    """Assigns each `source` weight to the `target` weight at the same
    place (both lists in the order Keras builds them: the same
    architecture); a position table with more rows than the target's is cut
    to its first rows. Returns the paths of the tables cut.

    Args:
        source: the weights to copy (a built model's `.weights`).
        target: the built model's weights to overwrite.
        where: what named the source, for messages ("train.init_from: runs/x").

    Raises:
        UserError: a different number of weights, or a weight of another
            shape that is not a longer position table.

    Example:
        cut = copy_weights(pretrained.backbone.weights, model.backbone.weights, "train.init_from: runs/x")
    """
    if len(source) != len(target):
        raise UserError(f"{where} has {len(source)} weight tensors; the model built for this run has {len(target)}")
    cut = []
    for src, dst in zip(source, target):
        value = ops.convert_to_numpy(src)
        if tuple(src.shape) != tuple(dst.shape):
            rows = dst.shape[0]
            if not ("position" in dst.path and tuple(src.shape[1:]) == tuple(dst.shape[1:]) and rows < src.shape[0]):
                raise UserError(f"{where}: its {src.path} is {tuple(src.shape)}, this run's {tuple(dst.shape)}")
            value = value[:rows]
            cut.append(dst.path)
        dst.assign(value.astype(np.dtype(dst.dtype)) if np.dtype(dst.dtype) != value.dtype else value)
    return cut
