"""Callbacks for what a user watches during training: the progress bar (on
a terminal) or plain step lines (a file or pipe), the validation lines with
the metrics of the run's kind, and TensorBoard scalars, samples and hparams.

Keras' own `TensorBoard` callback writes the epoch scalars; these add what it
lacks: step-level loss, learning rate and tokens/s keyed by the global step
(so a resumed run continues its curves instead of restarting them at 0),
perplexity, generated text samples, and the run's hyperparameters.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import keras
import tensorflow as tf

from kerasllm.compat import start_progbar_epoch
from kerasllm.training.optim import current_learning_rate


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar for a terminal, headed by `header(epoch)`.

    The trainer may run one epoch per `fit` call (to resume mid-epoch), and
    under `train.eval_every_steps` a Keras epoch is a stretch of steps between
    validations; the stock bar would print `Epoch 4/4` instead of `Epoch
    4/10`, or call a stretch of steps an epoch.
    """

    def __init__(self, header: Callable[[int], str]):
        super().__init__()
        self.header = header

    def on_epoch_begin(self, epoch, logs=None):
        # ProgbarLogger.on_epoch_begin, with our header for its `Epoch x/y`.
        start_progbar_epoch(self)
        print(self.header(epoch), flush=True)

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


# How each metric a task reports is named and written on the epoch line.
_METRIC_FORMATS = {"loss": "Loss: {:.4f}", "perplexity": "Perplexity: {:.2f}"}


def _perplexity(loss) -> float:
    value = float(loss)
    return math.exp(value) if value < 50 else math.inf


class EpochSummary(keras.callbacks.Callback):
    """At each validation: prints `Epoch 3/10, Validation Loss: …` with the
    task's `metrics` (e.g. loss, perplexity, accuracy), and adds perplexities
    to the logs where `perplexity` is among them (for TensorBoard).

    Args:
        label: the line's start for a Keras epoch index, e.g. `Epoch 3/10`.
        metrics: names of the logs' metrics to print, in order (`val_` is
            added); `perplexity` is computed from the loss.

    Example:
        EpochSummary(lambda e: f"Epoch {e + 1}/10", ("loss", "perplexity", "accuracy"))
    """

    def __init__(self, label: Callable[[int], str], metrics=("loss", "perplexity", "accuracy"), print_fn=print):
        super().__init__()
        self.label = label
        self.metrics = tuple(metrics)
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if "perplexity" in self.metrics:
            for key in ("loss", "val_loss"):
                if key in logs:
                    logs[key.replace("loss", "perplexity")] = _perplexity(logs[key])
        if "val_loss" not in logs:
            return
        parts = [self.label(epoch)]
        for name in self.metrics:
            if f"val_{name}" in logs:
                shown = _METRIC_FORMATS.get(name, name.replace("_", " ").title() + ": {:.4f}")
                parts.append("Validation " + shown.format(float(logs[f"val_{name}"])))
        self.print_fn(", ".join(parts))


def duration(seconds: float) -> str:
    """`3m10s`, `1h02m`, `45s`: a short time for a log line."""
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class StepScalars(keras.callbacks.Callback):
    """Every `every` batches: loss, perplexity (if `perplexity`), learning
    rate and tokens/s into TensorBoard and, given `print_fn`, one plain line
    `step 120/2400  loss 1.8321  tokens/s 9,812  eta 3m10s` (the output for a
    log file or a pipe, where a redrawn progress bar would be noise).

    Steps are counted in batches; `accum` batches make one optimizer step
    and `total` batches the run.
    """

    def __init__(self, writer, run_state, tokens_per_batch: float, every: int, perplexity: bool = True,
                 print_fn=None, total: int = 0, accum: int = 1):
        super().__init__()
        self.writer = writer
        self.run_state = run_state
        self.tokens_per_batch = tokens_per_batch
        self.every = every
        self.perplexity = perplexity
        self.print_fn = print_fn
        self.total = total
        self.accum = accum
        self._last = None  # the step of the last log, or where this sitting started
        self._since = None  # (time, step) the speed is measured from
        self._traced = False

    def on_train_batch_begin(self, batch, logs=None):
        if self._since is None:  # at the start, or after a validation (not training time)
            step = self.run_state.state.step
            self._since = (time.perf_counter(), step)
            self._last = step if self._last is None else self._last

    def on_train_batch_end(self, batch, logs=None):
        step, now = self.run_state.state.step, time.perf_counter()
        if not self._traced:  # the sitting's first execution traces the step function: not its speed
            self._traced, self._since = True, (now, step)
        # With steps_per_execution > 1 the step advances several at a time.
        if step // self.every == self._last // self.every or not logs or "loss" not in logs:
            return
        since, since_step = self._since
        speed = (step - since_step) / (now - since) if step > since_step and now > since else None  # batches/s
        loss = float(logs["loss"])
        with self.writer.as_default(step=step):
            tf.summary.scalar("step/loss", loss)
            if self.perplexity:
                tf.summary.scalar("step/perplexity", math.exp(min(loss, 50.0)))
            tf.summary.scalar("step/learning_rate", current_learning_rate(self.model.optimizer))
            if speed:
                tf.summary.scalar("step/tokens_per_second", speed * self.tokens_per_batch)
        self.writer.flush()
        if self.print_fn is not None:
            self.print_fn(self._line(step, loss, speed))
        self._last, self._since = step, (now, step)

    def _line(self, step: int, loss: float, speed) -> str:
        line = f"step {step // self.accum}/{self.total // self.accum}  loss {loss:.4f}"
        if speed:
            line += f"  tokens/s {speed * self.tokens_per_batch:,.0f}  eta {duration((self.total - step) / speed)}"
        return line

    def on_epoch_begin(self, epoch, logs=None):
        self._since = None  # validation time is not training throughput


class EpochScalars(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback with its `epoch_*` scalars written at
    `step_of(epoch)`: under `train.eval_every_steps` a Keras epoch is a
    stretch of steps between validations, and the scalars are keyed by the
    global step so that they line up with `step/*`.

    Keras' `on_epoch_end(epoch)` uses `epoch` only as the scalars' step (and
    for histograms and embeddings, which are off here);
    tests/test_train.py checks the steps written.
    """

    def __init__(self, log_dir: str, step_of: Callable[[int], int]):
        super().__init__(log_dir=log_dir, write_graph=False, update_freq="epoch")
        self.step_of = step_of

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(self.step_of(epoch), logs)


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


DATA_REPORT_FILE = "data_report.json"


def write_data_report(config, run, data_dir=None, print_fn=print) -> None:
    """Saves a new run's corpus report (`kerasllm.data.report`) as
    `data_report.json` in the run directory and as TensorBoard text
    (`data_report`, step 0). The run's own tokenizer is measured for its
    kind; no other subword tokenizer is learned (`kerasllm data-report` does).
    Question-answering runs have no report; a report that cannot be made
    (e.g. `data.prepared` without its source) is skipped with one line.

    Args:
        config: the run's `RunConfig`.
        run: the run's `RunDir` (its tokenizer is already saved).
        data_dir: where registered datasets are.
        print_fn: where the skip line goes.

    Example:
        write_data_report(config, RunDir("runs/tiny"))  # runs/tiny/data_report.json
    """
    import json

    from kerasllm import task_registry
    from kerasllm.data import report as data_report
    from kerasllm.data.tokenizers import load_tokenizer
    from kerasllm.errors import UserError
    from kerasllm.files import atomic_write_text

    if task_registry.for_model(config.model).report_corpus(config, data_dir) is None:
        return  # the task reads its data as it is: nothing cleaned or split to report
    # A translation run with a vocabulary per side has no one tokenizer for all of the text.
    shared = not (run.root / "tokenizer-target").is_dir()
    try:
        tokenizer = load_tokenizer(run.tokenizer) if shared else None
        report = data_report.data_report(config, data_dir, tokenizer=tokenizer, subwords=False)
    except UserError as e:
        print_fn(f"Data report skipped: {e}")
        return
    atomic_write_text(run.root / DATA_REPORT_FILE, json.dumps(report, ensure_ascii=False, indent=1))
    writer = tf.summary.create_file_writer(str(run.logs))
    with writer.as_default(step=0):
        tf.summary.text("data_report", "```\n" + data_report.format_report(report) + "\n```")
    writer.close()


def run_hparams(config, precision: str) -> dict:
    """What TensorBoard's HParams dashboard records of a run: the config keys
    that apply to its task (`kerasllm.config.applies`), flattened, with the
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
