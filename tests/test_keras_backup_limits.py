"""Why kerasllm keeps its own step-level resume (training/checkpoint.py):
Keras' BackupAndRestore, even saving every few batches, resumes at the start
of the interrupted epoch, and after a second crash it has forgotten the
epoch. If these tests start failing, Keras has fixed the behaviour and the
trainer could lean on it again."""

import json

import keras
import numpy as np


class Crash(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((self.epoch, batch))
        if (self.epoch, batch) == self.at:
            raise RuntimeError("crash")


def _fit(backup_dir, crash):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((40, 2)), np.ones((40, 1))
    backup = keras.callbacks.BackupAndRestore(str(backup_dir), save_freq=3)
    try:
        model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[backup, crash])
    except RuntimeError:
        pass
    return crash.seen


def test_backup_and_restore_restarts_the_epoch_and_forgets_it(tmp_path):
    _fit(tmp_path, Crash(epoch=2, batch=7))  # saved at batch 6 of epoch 2
    seen = _fit(tmp_path, Crash(epoch=2, batch=4))
    assert seen[0] == (2, 0)  # restarted at the epoch's first batch, not batch 7
    metadata = json.loads((tmp_path / "training_metadata.json").read_text())
    assert metadata["epoch"] == 0  # the second crash saved epoch 0
    seen = _fit(tmp_path, Crash(epoch=99, batch=0))
    assert seen[0] == (0, 0)  # so the third run starts over from epoch 0
