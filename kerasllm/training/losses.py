"""Cross-entropy with label smoothing for integer labels.

Keras' SparseCategoricalCrossentropy has no label smoothing and its
CategoricalCrossentropy needs one-hot labels (vocabulary-sized tensors in the
input pipeline); this computes the same smoothed loss from the log-softmax.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasllm")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """(1 - s) * NLL(label) + s * mean over the vocabulary of -log p, from logits."""

    def __init__(self, smoothing: float = 0.1, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.cast(y_true, "int32")
        nll = -ops.squeeze(ops.take_along_axis(log_probs, labels[..., None], axis=-1), -1)
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.smoothing) * nll + self.smoothing * uniform

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
