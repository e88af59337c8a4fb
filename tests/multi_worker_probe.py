"""Run by tests/test_distributed.py as one of two worker processes (TF_CONFIG
set by the test): does Keras' `fit` work under MultiWorkerMirroredStrategy
without kerasllm's fixes, and with them? Prints one JSON line."""

import json
import sys

import numpy as np
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras  # noqa: E402  (after the strategy: collectives are set up first)

if sys.argv[1] == "fixed":
    from kerasllm.compat import apply_distribution_fixes

    apply_distribution_fixes()

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
data = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(16).repeat()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
try:
    history = model.fit(data, steps_per_epoch=4, epochs=1, verbose=0)
    print(json.dumps({"ok": True, "loss": history.history["loss"]}))
except Exception as error:  # the failure is what the test looks for
    print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {str(error)[:300]}"}))
