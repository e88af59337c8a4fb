"""Label-smoothed cross-entropy for integer labels equals Keras' one-hot version."""

import keras
import numpy as np
import pytest

from kerasllm.training.losses import SmoothedSparseCrossentropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_keras_categorical_crossentropy_with_label_smoothing(smoothing):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 11)).astype("float32")
    labels = rng.integers(0, 11, size=(4, 5))
    weights = (rng.random((4, 5)) > 0.3).astype("float32")
    ours = SmoothedSparseCrossentropy(smoothing)(labels, logits, sample_weight=weights)
    reference = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)(
        keras.ops.one_hot(labels, 11), logits, sample_weight=weights
    )
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)
