"""Run directory layout, training state, and crash-safe checkpoints.

    runs/<name>/
      config.yaml          the resolved config of the run
      tokenizer/           the trained tokenizer
      data.json            block counts and steps per epoch (computed once)
      checkpoints/
        latest             name of the newest complete checkpoint directory
        step-000200/       weights.weights.h5 (model + optimizer), state.json
        best.weights.h5    the weights with the lowest validation loss
      logs/                TensorBoard event files

Every write goes to a temporary name first and is renamed into place: a
checkpoint directory is complete before `latest` points at it, so `kill -9`
at any moment leaves the previous checkpoint usable.

Keras' BackupAndRestore restarts at the beginning of the interrupted epoch and,
after a second crash, saves epoch 0 again (it only learns the epoch at an
epoch's end). `RunState` saves the global step instead; the trainer resumes
the data stream and the epoch exactly at that step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from kerasllm.files import atomic_write_text, temporary_sibling


@dataclass
class TrainingState:
    step: int = 0  # batches done (optimizer steps x grad_accum_steps)
    epoch: int = 0  # epochs completed
    best_val_loss: float = math.inf
    best_step: int = -1
    epochs_without_improvement: int = 0  # validations, under train.eval_every_steps
    finished: bool = False
    stop_reason: str = ""
    # Seconds of training up to this save, over every sitting: a resumed run
    # gets what is left of train.time_limit_minutes, not the whole again.
    train_seconds: float = 0.0

    @classmethod
    def from_json(cls, text: str) -> "TrainingState":
        values = json.loads(text)
        values["best_val_loss"] = float(values.get("best_val_loss", math.inf))
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def atomic_save_weights(model, path: Path) -> None:
    tmp = temporary_sibling(path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(tmp))
    os.replace(tmp, path)


class RunDir:
    """Paths of one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.tokenizer = self.root / "tokenizer"
        self.data = self.root / "data.json"
        self.checkpoints = self.root / "checkpoints"
        self.latest_pointer = self.checkpoints / "latest"
        self.best_weights = self.checkpoints / "best.weights.h5"
        self.clock = self.checkpoints / "clock.json"
        self.logs = self.root / "logs"

    def latest(self) -> Path | None:
        """The checkpoint `latest` names; if that is unreadable, the newest
        complete one (a checkpoint directory is complete once renamed)."""
        if self.latest_pointer.is_file():
            path = self.checkpoints / self.latest_pointer.read_text().strip()
            if (path / "state.json").is_file():
                return path
        complete = sorted(p for p in self.checkpoints.glob("step-*") if (p / "state.json").is_file())
        return complete[-1] if complete else None

    def load_state(self) -> TrainingState:
        latest = self.latest()
        if latest is None:
            return TrainingState()
        return TrainingState.from_json((latest / "state.json").read_text())

    def spent_seconds(self) -> float:
        """Training seconds the run's clock last recorded (0 if none): it runs
        ahead of the checkpoints, so a crash does not give back the time since
        the last save."""
        try:
            return float(json.loads(self.clock.read_text())["train_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    def record_spent_seconds(self, seconds: float) -> None:
        atomic_write_text(self.clock, json.dumps({"train_seconds": seconds}))

    def inference_weights(self) -> Path | None:
        """Best weights if validation ran, else the newest checkpoint's."""
        if self.best_weights.is_file():
            return self.best_weights
        latest = self.latest()
        return latest / "weights.weights.h5" if latest else None

    def load_inference_weights(self, model) -> None:
        """Loads `inference_weights()` into a built `model`. A checkpoint's
        file also holds optimizer state, which inference has no use for, so
        Keras' warning that it skipped it is silenced."""
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(str(self.inference_weights()))

    def save_checkpoint(self, model, state: TrainingState, keep: int = 2) -> Path:
        name = f"step-{state.step:09d}"
        final = self.checkpoints / name
        if final.exists():  # never replace a complete checkpoint in place
            name = f"step-{state.step:09d}.{len(list(self.checkpoints.glob(name + '*')))}"
            final = self.checkpoints / name
        tmp = self.checkpoints / f".tmp-{os.getpid()}-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_weights(str(tmp / "weights.weights.h5"))
        (tmp / "state.json").write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, final)
        atomic_write_text(self.latest_pointer, name)
        old = sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir() and p.name != name)
        for path in old[: max(len(old) - (keep - 1), 0)]:
            shutil.rmtree(path, ignore_errors=True)
        return final


def weights_are_finite(model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables)


CLOCK_EVERY_S = 30.0  # how often a time-limited run records the training time it has spent


class RunState(keras.callbacks.Callback):
    """Counts global steps; saves, stops and tracks the best validation loss.

    - every `save_every` batches: a resumable checkpoint (weights, optimizer,
      step), skipped if the loss or the weights are not finite;
    - at `max_batches` or past the time limit: asks fit to stop (fit still validates and ends the
      epoch, so the final checkpoint includes the validation result); a
      limit passed during validation stops before the next epoch;
    - under a time limit: from the speed measured so far, moves the end of
      the learning-rate `schedule`'s decay to the step the limit will stop at;
    - at each validation (the end of a Keras epoch: every `period` batches,
      `per_epoch` unless `train.eval_every_steps` says otherwise): best
      weights on a lower validation loss, early stopping after `patience`
      validations of a whole period without improvement (0 = off);
    - on a NaN/inf loss: stops without saving, records why.

    Checkpoints keep the newest `keep` resumable ones.
    """

    def __init__(
        self,
        run: RunDir,
        state: TrainingState,
        save_every: int,
        max_batches: int,
        per_epoch: int,
        patience: int = 0,
        time_limit_s: float = 0,
        schedule=None,
        period: int = 0,
        keep: int = 2,
    ):
        super().__init__()
        self.run = run
        self.state = state
        self.save_every = save_every
        self.max_batches = max_batches
        self.per_epoch = per_epoch
        self.period = period or per_epoch  # batches between validations: one Keras epoch
        self.patience = patience
        self.keep = keep
        self._sitting_start = time.monotonic()
        # Under a time limit, time spent after the last checkpoint of a
        # sitting that crashed counts too (the run's clock, see `_keep_time`).
        self._seconds_before = max(state.train_seconds, run.spent_seconds()) if time_limit_s else state.train_seconds
        self._clock_written = self._sitting_start
        self.deadline = self._sitting_start + time_limit_s - self._seconds_before if time_limit_s else None
        self.schedule = schedule if time_limit_s else None
        self._speed_from = None  # (time, step) where this sitting's speed is measured from
        if self.schedule is not None and state.step and state.train_seconds > 0:
            # Until this sitting has measured its own speed: the earlier sittings' speed.
            self._end_schedule_at(state.step / state.train_seconds)
        self._epoch_start_step = state.step
        self.diverged = False

    def _end_schedule_at(self, batches_per_second: float) -> None:
        left = max(self.deadline - time.monotonic(), 0.0)
        self.schedule.end_at(self.state.step + batches_per_second * left)

    def _follow_speed(self) -> None:
        # Measured from the end of this sitting's first execution (which
        # includes tracing) over wall-clock time, so validations count too.
        now = time.monotonic()
        if self._speed_from is None:
            self._speed_from = (now, self.state.step)
            return
        since, step = self._speed_from
        if now > since and self.state.step > step:
            self._end_schedule_at((self.state.step - step) / (now - since))

    def _spent(self, now: float) -> float:
        return self._seconds_before + now - self._sitting_start

    def _keep_time(self) -> None:
        """Records the training time spent every `CLOCK_EVERY_S` seconds, so
        a run that crashes between checkpoints loses at most that much of its
        time limit's accounting, not the time since its last save."""
        now = time.monotonic()
        if now - self._clock_written >= CLOCK_EVERY_S:
            self.run.record_spent_seconds(self._spent(now))
            self._clock_written = now

    def _stop_if_out_of_time(self) -> bool:
        if self.deadline is None:
            return False
        self._keep_time()
        if time.monotonic() < self.deadline:
            return False
        self.state.stop_reason = f"time limit reached at step {self.state.step}"
        self.model.stop_training = True
        return True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.state.step

    def on_train_batch_end(self, batch, logs=None):
        self.state.step = self._epoch_start_step + batch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = True
            self.state.stop_reason = f"loss became {float(loss)} at step {self.state.step}"
            self.model.stop_training = True
            return
        if self.state.step >= self.max_batches:
            self.model.stop_training = True
        elif not self._stop_if_out_of_time() and self.state.step % self.save_every == 0 and self.state.step % self.period:
            # (Before a validation the save waits for it, so that a resume
            # never skips a validation and its bookkeeping.)
            self._save()
        if self.schedule is not None and not self.model.stop_training:
            self._follow_speed()

    def _save(self):
        if self.diverged:
            return
        if not weights_are_finite(self.model):
            self.diverged = True
            self.state.stop_reason = f"weights became NaN/inf at step {self.state.step}"
            self.model.stop_training = True
            return
        self.state.train_seconds = self._spent(time.monotonic())
        self.run.save_checkpoint(self.model, self.state, keep=self.keep)

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        logs = logs or {}
        # A period cut short (max_steps, time limit) is validated, but only a
        # whole one counts towards early stopping's patience.
        whole = self.state.step % self.period == 0
        self.state.epoch = self.state.step // self.per_epoch
        val_loss = logs.get("val_loss")
        if val_loss is not None and math.isfinite(float(val_loss)):
            if float(val_loss) < self.state.best_val_loss:
                self.state.best_val_loss = float(val_loss)
                self.state.best_step = self.state.step
                self.state.epochs_without_improvement = 0
                atomic_save_weights(self.model, self.run.best_weights)
            elif whole:
                self.state.epochs_without_improvement += 1
                if self.patience and self.state.epochs_without_improvement >= self.patience:
                    unit = "epoch(s)" if self.period == self.per_epoch else "validations"
                    self.state.stop_reason = (
                        f"early stopping: validation loss has not improved for {self.patience} {unit}"
                    )
                    self.model.stop_training = True
        if self.state.step >= self.max_batches:
            self.state.finished = True
        elif not self.model.stop_training:
            self._stop_if_out_of_time()  # the clock may have run out during validation
        if self.model.stop_training and not self.diverged:
            self.state.finished = True
        self._save()
