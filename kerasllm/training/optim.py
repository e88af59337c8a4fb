"""Optimizer and learning-rate schedule from `TrainConfig`.

AdamW with linear warmup then cosine decay to `min_learning_rate`, global
norm clipping, optional gradient accumulation, and no weight decay on
biases, norms and embeddings (decaying those only hurts).

Keras evaluates the schedule at every batch (also when accumulating), so
warmup and decay lengths are given in batches here.
"""

from __future__ import annotations

import keras

from kerasllm.config import TrainConfig

# Substrings of variable paths that weight decay skips.
NO_DECAY = ["bias", "gamma", "beta", "embeddings"]


def make_schedule(config: TrainConfig, total_steps: int):
    accum = config.grad_accum_steps
    warmup = min(config.warmup_steps, max(total_steps - 1, 0)) * accum
    decay = max(total_steps * accum - warmup, 1)
    alpha = 1.0 if config.schedule == "constant" else min(config.min_learning_rate / config.learning_rate, 1.0)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=decay, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
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


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(lr))
