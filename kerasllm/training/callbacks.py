"""Callbacks for what a user watches during training: the progress bar and
epoch lines on the terminal, and TensorBoard scalars, samples and hparams.

Keras' own `TensorBoard` callback writes the epoch scalars; these add what it
lacks: step-level loss, learning rate and tokens/s keyed by the global step
(so a resumed run continues its curves instead of restarting them at 0),
perplexity, generated text samples, and the run's hyperparameters.
"""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from kerasllm.training.optim import current_learning_rate


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, numbering epochs out of the whole run's total.

    The trainer may run one epoch per `fit` call (to resume mid-epoch); the
    stock bar would then print `Epoch 4/4` instead of `Epoch 4/10`.
    """

    def __init__(self, total_epochs: int):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self.total_epochs

    def on_epoch_end(self, epoch, logs=None):
        # An epoch cut short (train.max_steps, the time limit) ends its bar
        # at the last step run, e.g. 60/240; the stock bar jumps to 240/240.
        length = self.target
        if length and self.seen < length:
            self.target = self.seen
        try:
            super().on_epoch_end(epoch, logs)
        finally:
            self.target = length


class EpochSummary(keras.callbacks.Callback):
    """Adds perplexities to the logs and prints `Epoch 3/10, Validation Loss: …`."""

    def __init__(self, total_epochs: int, print_fn=print):
        super().__init__()
        self.total_epochs = total_epochs
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key in ("loss", "val_loss"):
            if key in logs:
                value = float(logs[key])
                logs[key.replace("loss", "perplexity")] = math.exp(value) if value < 50 else math.inf
        if "val_loss" in logs:
            self.print_fn(
                f"Epoch {epoch + 1}/{self.total_epochs}, Validation Loss: {float(logs['val_loss']):.4f}, "
                f"Validation Perplexity: {logs['val_perplexity']:.2f}"
            )


class StepScalars(keras.callbacks.Callback):
    """Every `every` batches: loss, perplexity, learning rate, tokens/s."""

    def __init__(self, writer, run_state, tokens_per_batch: int, every: int):
        super().__init__()
        self.writer = writer
        self.run_state = run_state
        self.tokens_per_batch = tokens_per_batch
        self.every = every
        self._t0 = None
        self._step0 = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._t0 is None:
            self._t0, self._step0 = time.perf_counter(), self.run_state.state.step

    def on_train_batch_end(self, batch, logs=None):
        step = self.run_state.state.step
        # With steps_per_execution > 1 the step advances several at a time.
        if self._step0 is None or step // self.every == self._step0 // self.every or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        elapsed = now - (self._t0 or now)
        batches = step - (self._step0 or step)
        loss = float(logs["loss"])
        with self.writer.as_default(step=step):
            tf.summary.scalar("step/loss", loss)
            tf.summary.scalar("step/perplexity", math.exp(min(loss, 50.0)))
            tf.summary.scalar("step/learning_rate", current_learning_rate(self.model.optimizer))
            if batches > 0 and elapsed > 0:
                tf.summary.scalar("step/tokens_per_second", batches * self.tokens_per_batch / elapsed)
        self.writer.flush()
        self._t0, self._step0 = now, step

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = None  # validation time is not training throughput


class TextSamples(keras.callbacks.Callback):
    """Generates a few samples at each epoch's end into TensorBoard."""

    def __init__(self, writer, run_state, sample_fn):
        super().__init__()
        self.writer = writer
        self.run_state = run_state
        self.sample_fn = sample_fn
        self.last = []

    def on_epoch_end(self, epoch, logs=None):
        if self.run_state.diverged:
            return
        self.last = self.sample_fn()
        text = "\n\n".join(f"```\n{s}\n```" for s in self.last)
        with self.writer.as_default(step=self.run_state.state.step):
            tf.summary.text("samples", text)
        self.writer.flush()


def write_hparams(logdir: str, run_name: str, hparams: dict) -> None:
    """Records the run's hyperparameters for TensorBoard's HParams dashboard."""
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp.hparams(hparams, trial_id=run_name)
    writer.flush()
    writer.close()


def run_hparams(config, precision: str) -> dict:
    """What TensorBoard's HParams dashboard records of a run: the config keys
    that apply to its kind (`kerasllm.config.KIND_KEYS`), flattened, with the
    precision it trains in (config.yaml keeps `auto`), so runs compare by it.

    Example:
        run_hparams(config, "float32")["model.num_layers"]  # 4
    """
    hparams = flat_hparams(config.to_dict(applicable_only=True))
    hparams["train.precision"] = precision
    return hparams


def flat_hparams(config_dict: dict) -> dict:
    """Nested config -> {"model.num_layers": 4, ...} with TensorBoard-safe values."""
    out = {}

    def walk(node, prefix):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, path)
            elif isinstance(value, (bool, int, float, str)):
                out[path] = value
            elif value is None:
                out[path] = "none"

    walk(config_dict, "")
    return out
