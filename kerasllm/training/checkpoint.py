"""A run's bookkeeping: callbacks that keep its `TrainingState` and checkpoints.

Keras' BackupAndRestore restarts at the beginning of the interrupted epoch and,
after a second crash, saves epoch 0 again (it only learns the epoch at an
epoch's end). These callbacks save the global step instead; the trainer
resumes the data stream and the epoch exactly at that step.

Each callback has one job (`training_callbacks` lists them in the order
they must run, and says why). They share one `SharedState`, the run's
`TrainingState` with this sitting's clock and whether the run diverged,
and never call each other. `RunState` runs them as one callback, the handle
the trainer gives `fit` and the display callbacks (`callbacks.py`) read.
The run directory's layout and the checkpoint files are `kerasllm.run_dir`'s.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from kerasllm.files import temporary_sibling
from kerasllm.run_dir import RunDir, TrainingState


def atomic_save_weights(model, path: Path) -> None:
    tmp = temporary_sibling(path)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(tmp))
    os.replace(tmp, path)


def weights_are_finite(model) -> bool:
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables)


CLOCK_EVERY_S = 30.0  # how often a time-limited run records the training time it has spent


class SharedState:
    """What the bookkeeping callbacks share, and all they share.

    Args:
        state: the run's `TrainingState` (its newest checkpoint's, or new);
            the callbacks update it in place and a checkpoint saves it.
        seconds_before: training seconds of the earlier sittings.

    `diverged` is set once the loss or the weights are no longer finite:
    from then on nothing is saved and no callback acts.

    Example:
        shared = SharedState(RunDir("runs/tiny").load_state(), seconds_before=0.0)
        shared.spent(time.monotonic())  # training seconds so far, all sittings
    """

    def __init__(self, state: TrainingState, seconds_before: float):
        self.state = state
        self.diverged = False
        self.seconds_before = seconds_before
        self.sitting_start = time.monotonic()

    def spent(self, now: float) -> float:
        """Training seconds at monotonic time `now`, over every sitting."""
        return self.seconds_before + now - self.sitting_start

    def stop(self, model, reason: str, diverged: bool = False) -> None:
        """Asks `fit` to stop, recording why (and whether the run diverged)."""
        self.state.stop_reason = reason
        self.diverged = self.diverged or diverged
        model.stop_training = True


class StepCounter(keras.callbacks.Callback):
    """Counts the run's global step (batches since the run began, across
    `fit` calls and sittings) and the epochs of data completed.

    Args:
        shared: the callbacks' `SharedState`.
        per_epoch: batches in one epoch of data.
    """

    def __init__(self, shared: SharedState, per_epoch: int):
        super().__init__()
        self.shared = shared
        self.per_epoch = per_epoch
        self._epoch_start_step = shared.state.step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.shared.state.step

    def on_train_batch_end(self, batch, logs=None):
        self.shared.state.step = self._epoch_start_step + batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if not self.shared.diverged:
            self.shared.state.epoch = self.shared.state.step // self.per_epoch


class NaNGuard(keras.callbacks.Callback):
    """Stops the run, as diverged, at a NaN/inf training loss (nothing is
    saved after it; `Checkpointing` checks the weights themselves).

    Args:
        shared: the callbacks' `SharedState`.
    """

    def __init__(self, shared: SharedState):
        super().__init__()
        self.shared = shared

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.shared.stop(self.model, f"loss became {float(loss)} at step {self.shared.state.step}", diverged=True)


class BestWeights(keras.callbacks.Callback):
    """At each validation (the end of a Keras epoch: every `period`
    batches): the best weights on a lower validation loss, and early
    stopping after `patience` validations of a whole period without
    improvement (0 = off). A period cut short (max_steps, a time limit) is
    validated, but does not count towards the patience.

    Args:
        run: where the best weights go (`RunDir.best_weights`).
        shared: the callbacks' `SharedState`.
        per_epoch: batches in one epoch of data.
        period: batches between validations.
        patience: validations without improvement before stopping (0 = off).
    """

    def __init__(self, run: RunDir, shared: SharedState, per_epoch: int, period: int, patience: int):
        super().__init__()
        self.run, self.shared = run, shared
        self.per_epoch, self.period, self.patience = per_epoch, period, patience

    def on_epoch_end(self, epoch, logs=None):
        if self.shared.diverged:
            return
        state = self.shared.state
        whole = state.step % self.period == 0
        val_loss = (logs or {}).get("val_loss")
        if val_loss is None or not math.isfinite(float(val_loss)):
            return
        if float(val_loss) < state.best_val_loss:
            state.best_val_loss = float(val_loss)
            state.best_step = state.step
            state.epochs_without_improvement = 0
            atomic_save_weights(self.model, self.run.best_weights)
        elif whole:
            state.epochs_without_improvement += 1
            if self.patience and state.epochs_without_improvement >= self.patience:
                unit = "epoch(s)" if self.period == self.per_epoch else "validations"
                self.shared.stop(self.model, f"early stopping: validation loss has not improved for {self.patience} {unit}")


class Budget(keras.callbacks.Callback):
    """Ends the run when its batches or its time run out, and under a time
    limit fits the learning-rate schedule's horizon to the time.

    - at `max_batches`, or past the time limit: asks fit to stop (fit still
      validates and ends the epoch, so the final checkpoint includes the
      validation result); a limit passed during validation stops before
      the next epoch. A run stopped at an epoch's end is `finished`;
    - under a time limit: records the training time spent every
      `CLOCK_EVERY_S` seconds (a crash between checkpoints does not give
      that time back), and from the speed measured so far moves the end of
      the `schedule`'s decay to the step the limit will stop at.

    Args:
        run: where the clock is recorded (`RunDir.clock`).
        shared: the callbacks' `SharedState`.
        max_batches: the run's last batch.
        time_limit_s: seconds of training for the whole run (0 = none).
        schedule: the optimizer's schedule (`optim.schedule_of`), or None.
    """

    def __init__(self, run: RunDir, shared: SharedState, max_batches: int, time_limit_s: float = 0, schedule=None):
        super().__init__()
        self.run, self.shared, self.max_batches = run, shared, max_batches
        self._clock_written = shared.sitting_start
        self.deadline = shared.sitting_start + time_limit_s - shared.seconds_before if time_limit_s else None
        self.schedule = schedule if time_limit_s else None
        self._speed_from = None  # (time, step) where this sitting's speed is measured from
        state = shared.state
        if self.schedule is not None and state.step and state.train_seconds > 0:
            # Until this sitting has measured its own speed: the earlier sittings' speed.
            self._end_schedule_at(state.step / state.train_seconds)

    def _end_schedule_at(self, batches_per_second: float) -> None:
        left = max(self.deadline - time.monotonic(), 0.0)
        self.schedule.end_at(self.shared.state.step + batches_per_second * left)

    def _follow_speed(self) -> None:
        # Measured from the end of this sitting's first execution (which
        # includes tracing) over wall-clock time, so validations count too.
        now, step = time.monotonic(), self.shared.state.step
        if self._speed_from is None:
            self._speed_from = (now, step)
            return
        since, since_step = self._speed_from
        if now > since and step > since_step:
            self._end_schedule_at((step - since_step) / (now - since))

    def _keep_time(self) -> None:
        now = time.monotonic()
        if now - self._clock_written >= CLOCK_EVERY_S:
            self.run.record_spent_seconds(self.shared.spent(now))
            self._clock_written = now

    def _stop_if_out_of_time(self) -> None:
        if self.deadline is None:
            return
        self._keep_time()
        if time.monotonic() >= self.deadline:
            self.shared.stop(self.model, f"time limit reached at step {self.shared.state.step}")

    def on_train_batch_end(self, batch, logs=None):
        if self.shared.diverged:
            return
        if self.shared.state.step >= self.max_batches:
            self.model.stop_training = True
        else:
            self._stop_if_out_of_time()
        if self.schedule is not None and not self.model.stop_training:
            self._follow_speed()

    def on_epoch_end(self, epoch, logs=None):
        if self.shared.diverged:
            return
        if self.shared.state.step >= self.max_batches:
            self.shared.state.finished = True
        elif not self.model.stop_training:
            self._stop_if_out_of_time()  # the clock may have run out during validation
        if self.model.stop_training:
            self.shared.state.finished = True


class Checkpointing(keras.callbacks.Callback):
    """Resumable checkpoints (weights, optimizer, `TrainingState`): every
    `save_every` batches, and at every validation's end. Before a
    validation the save waits for it, so a resume never skips a validation
    and its bookkeeping; a batch that stops the run leaves the save to the
    epoch's end. A checkpoint is never saved with NaN/inf weights: finding
    them stops the run as diverged. The newest `keep` checkpoints stay.

    Args:
        run: the run directory the checkpoints go to.
        shared: the callbacks' `SharedState`.
        save_every: batches between checkpoints.
        period: batches between validations.
        keep: checkpoints to keep.
    """

    def __init__(self, run: RunDir, shared: SharedState, save_every: int, period: int, keep: int = 2):
        super().__init__()
        self.run, self.shared = run, shared
        self.save_every, self.period, self.keep = save_every, period, keep

    def on_train_batch_end(self, batch, logs=None):
        step = self.shared.state.step
        if not (self.shared.diverged or self.model.stop_training) and step % self.save_every == 0 and step % self.period:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def save(self) -> None:
        if self.shared.diverged:
            return
        state = self.shared.state
        if not weights_are_finite(self.model):
            self.shared.stop(self.model, f"weights became NaN/inf at step {state.step}", diverged=True)
            return
        state.train_seconds = self.shared.spent(time.monotonic())
        self.run.save_checkpoint(self.model, state, keep=self.keep)


def training_callbacks(run: RunDir, shared: SharedState, *, save_every: int, max_batches: int, per_epoch: int,
                       period: int, patience: int = 0, time_limit_s: float = 0, schedule=None, keep: int = 2) -> list:
    """The bookkeeping callbacks of a run, in the order they must run.

    1. `StepCounter`: every other callback reads the step it sets.
    2. `NaNGuard`: a NaN/inf loss stops the run before anything acts on it.
    3. `BestWeights`: the validation result (best weights, early stopping)
       comes before deciding whether the run is finished.
    4. `Budget`: stops at the run's end or its time limit, and marks a
       stopped run finished, before the save records that; a batch it
       stops at is not checkpointed (the epoch's end is).
    5. `Checkpointing`: last, so that a checkpoint holds everything the
       others decided at that step.

    Args: see the callbacks; `per_epoch` and `period` in batches.

    Example:
        shared = SharedState(run.load_state(), seconds_before=0.0)
        fit(..., callbacks=training_callbacks(run, shared, save_every=200, max_batches=2000,
                                              per_epoch=500, period=500))
    """
    return [
        StepCounter(shared, per_epoch),
        NaNGuard(shared),
        BestWeights(run, shared, per_epoch, period, patience),
        Budget(run, shared, max_batches, time_limit_s, schedule),
        Checkpointing(run, shared, save_every, period, keep),
    ]


class RunState(keras.callbacks.Callback):
    """The callbacks of `training_callbacks`, run in their order as one
    callback: what the trainer gives `fit`, and what the display callbacks
    read the step (`state.step`) and `diverged` from.

    Args:
        run: the run directory (checkpoints, best weights, clock).
        state: the run's `TrainingState`, updated in place.
        save_every: batches between checkpoints.
        max_batches: the run's last batch.
        per_epoch: batches in one epoch of data.
        patience: early stopping's patience in validations (0 = off).
        time_limit_s: seconds of training for the whole run (0 = none).
        schedule: the optimizer's learning-rate schedule, or None.
        period: batches between validations (0: `per_epoch`).
        keep: checkpoints to keep.

    Example:
        run_state = RunState(RunDir("runs/tiny"), TrainingState(), save_every=200, max_batches=2000,
                             per_epoch=500)
        model.fit(data, epochs=4, steps_per_epoch=500, callbacks=[run_state])
    """

    def __init__(self, run: RunDir, state: TrainingState, save_every: int, max_batches: int, per_epoch: int,
                 patience: int = 0, time_limit_s: float = 0, schedule=None, period: int = 0, keep: int = 2):
        super().__init__()
        # Under a time limit, time spent after the last checkpoint of a
        # sitting that crashed counts too (the run's clock, `Budget._keep_time`).
        before = max(state.train_seconds, run.spent_seconds()) if time_limit_s else state.train_seconds
        self.shared = SharedState(state, before)
        self.callbacks = training_callbacks(
            run, self.shared, save_every=save_every, max_batches=max_batches, per_epoch=per_epoch,
            period=period or per_epoch, patience=patience, time_limit_s=time_limit_s, schedule=schedule, keep=keep,
        )
        self._checkpointing = next(c for c in self.callbacks if isinstance(c, Checkpointing))

    @property
    def state(self) -> TrainingState:
        return self.shared.state

    @property
    def diverged(self) -> bool:
        return self.shared.diverged

    # The one-callback RunState's save, still replaceable as such (a test
    # of the time limit has no model to save).
    @property
    def _save(self):
        return self._checkpointing.save

    @_save.setter
    def _save(self, save) -> None:
        self._checkpointing.save = save

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def on_epoch_begin(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
