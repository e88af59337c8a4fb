"""One place for `tf.distribute` setup.

`auto` is TensorFlow's default strategy (one device), `one_device` pins the
first GPU or the CPU, `mirrored` replicates over the local GPUs or, with
`train.cpu_devices: N`, over N logical CPU devices (so data-parallel
training is testable on a laptop).

Logical devices must be declared before TensorFlow touches a device, so
call `make_strategy` before building datasets or models.
"""

from __future__ import annotations

import tensorflow as tf

from kerasllm.config import TrainConfig
from kerasllm.errors import UserError


def _split_cpu(n: int) -> list:
    cpus = tf.config.list_physical_devices("CPU")
    current = tf.config.get_logical_device_configuration(cpus[0])
    if current and len(current) == n:
        return tf.config.list_logical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        raise UserError(
            "train.cpu_devices: TensorFlow was already initialised in this process with "
            f"{len(current or [1])} CPU device(s); start a new process to use {n}"
        ) from None
    return tf.config.list_logical_devices("CPU")


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    cpus = _split_cpu(config.cpu_devices) if config.cpu_devices > 1 else None
    gpus = tf.config.list_logical_devices("GPU")
    if config.strategy == "auto":
        return tf.distribute.get_strategy()
    if config.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if config.strategy == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        devices = [d.name for d in (cpus or tf.config.list_logical_devices("CPU"))]
        # NCCL is GPU-only; CPU replicas reduce through one device.
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    raise UserError(f"train.strategy: unknown strategy {config.strategy!r}")
