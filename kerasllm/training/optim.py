"""Optimizer and learning-rate schedule from `TrainConfig`.

AdamW with linear warmup then cosine decay to `min_learning_rate`, global
norm clipping, optional gradient accumulation, and no weight decay on
biases, norms and embeddings (decaying those only hurts).

Keras evaluates the schedule at every batch (also when accumulating), so
warmup and decay lengths are given in batches here.

A run stopped by `train.time_limit_minutes` would, on a slow machine, stop
long before the planned epochs end, with the learning rate still near its
peak. Its decay is brought forward to the step the clock will stop at
(`CosineDecayToHorizon.end_at`, called by the trainer as it measures its
speed), so every time-limited run ends annealed.
"""

from __future__ import annotations

import keras

from kerasllm.compat import learning_rate_schedule
from kerasllm.config import TrainConfig

# Substrings of variable paths that weight decay skips.
NO_DECAY = ["bias", "gamma", "beta", "embeddings"]


class CosineDecayToHorizon(keras.optimizers.schedules.CosineDecay):
    """Keras' `CosineDecay` (with its optional linear warmup) whose end can
    be moved while training runs, never past the planned one.

    >>> schedule = CosineDecayToHorizon(initial_learning_rate=1.0, decay_steps=1000, alpha=0.1)
    >>> _ = schedule.end_at(100)  # the run will stop after 100 batches
    >>> round(float(schedule(100)), 3)
    0.1
    """

    def __init__(self, *, decay_steps: int, warmup_steps: int = 0, **kwargs):
        super().__init__(decay_steps=decay_steps, warmup_steps=warmup_steps, **kwargs)
        self.planned_decay_steps, self.planned_warmup_steps = decay_steps, warmup_steps
        # Read inside the compiled train step, so a new end applies at once.
        self.decay_steps = keras.Variable(float(decay_steps), dtype="float32", trainable=False, name="decay_steps")
        self.warmup_steps = keras.Variable(float(warmup_steps), dtype="float32", trainable=False, name="warmup_steps")

    def end_at(self, batches: float) -> int:
        """Ends the decay after `batches` batches in all (warmup included),
        or at the planned end if that comes first; returns the end used.
        Warmup keeps its planned length unless that is over half of
        `batches`, so that a short budget still decays after it."""
        warmup = min(self.planned_warmup_steps, int(batches // 2))
        decay = int(min(max(batches - warmup, 1), self.planned_decay_steps))
        self.warmup_steps.assign(float(warmup))
        self.decay_steps.assign(float(decay))
        return decay + warmup

    def get_config(self):
        return {**super().get_config(), "decay_steps": self.planned_decay_steps,
                "warmup_steps": self.planned_warmup_steps}


def make_schedule(config: TrainConfig, total_steps: int) -> CosineDecayToHorizon:
    accum = config.grad_accum_steps
    warmup = min(config.warmup_steps, max(total_steps - 1, 0)) * accum
    decay = max(total_steps * accum - warmup, 1)
    alpha = 1.0 if config.schedule == "constant" else min(config.min_learning_rate / config.learning_rate, 1.0)
    if warmup == 0:
        return CosineDecayToHorizon(initial_learning_rate=config.learning_rate, decay_steps=decay, alpha=alpha)
    return CosineDecayToHorizon(
        initial_learning_rate=0.0,
        decay_steps=decay,
        alpha=alpha,
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = make_schedule(config, total_steps)
    common = dict(
        learning_rate=schedule,
        beta_1=config.beta_1,
        beta_2=config.beta_2,
        global_clipnorm=config.clip_norm or None,
        gradient_accumulation_steps=config.grad_accum_steps if config.grad_accum_steps > 1 else None,
    )
    if config.optimizer == "adam":
        return keras.optimizers.Adam(**common)
    optimizer = keras.optimizers.AdamW(weight_decay=config.weight_decay, **common)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def schedule_of(optimizer) -> CosineDecayToHorizon:
    """The schedule `make_optimizer` gave `optimizer` (Keras keeps it
    privately; `optimizer.learning_rate` is only its current value)."""
    return learning_rate_schedule(optimizer)


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
