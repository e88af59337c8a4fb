"""One place for `tf.distribute` setup.

`auto` is TensorFlow's default strategy (one device), `one_device` pins the
first GPU or the CPU, `mirrored` replicates over the local GPUs or, with
`train.cpu_devices: N`, over N logical CPU devices (so data-parallel
training is testable on a laptop), `multi_worker` is
MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG` (which
`worker_tf_config` writes for `--workers/--worker-index`), and `tpu` is
TPUStrategy on `train.tpu`.

Logical devices and collective ops must be set up before TensorFlow touches
a device, so call `make_strategy` before building datasets or models.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys

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


def worker_tf_config(workers: str, index: int) -> str:
    """TF_CONFIG for worker `index` of the comma-separated `host:port` list;
    worker 0 is the chief."""
    addresses = [w.strip() for w in workers.split(",") if w.strip()]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--workers: {address!r} is not host:port")
    if len(set(addresses)) != len(addresses):
        raise UserError(f"--workers: an address is listed twice in {workers!r}")
    if not 0 <= index < len(addresses):
        raise UserError(f"--worker-index {index}: must be in 0..{len(addresses) - 1} for {len(addresses)} workers")
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def local_worker_addresses(n: int) -> str:
    """`--workers` for n workers on this machine: 127.0.0.1 with free ports
    (for trying multi-worker training, tests and benchmarks)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    finally:
        for s in sockets:
            s.close()


def cluster_from_env() -> dict:
    """The parsed TF_CONFIG, checked enough to give a clear error."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise UserError("train.strategy: multi_worker needs the cluster in TF_CONFIG, or "
                        "--workers host1:port,host2:port --worker-index i")
    try:
        config = json.loads(raw)
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError):
        raise UserError('TF_CONFIG: expected JSON like {"cluster": {"worker": ["host:port", ...]}, '
                        '"task": {"type": "worker", "index": 0}}') from None
    if not 0 <= index < len(members):
        raise UserError(f"TF_CONFIG: task index {index} but the cluster has {len(members)} {task_type}(s)")
    return config


# Runs in its own Python process: waits until the parent closes stdin (the
# cluster formed, or the parent died), or else names the silent peers and
# ends the parent.
_WATCHDOG = r"""
import os, select, signal, socket, sys
parent, seconds, message, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
if select.select([sys.stdin], [], [], seconds)[0]:
    sys.exit(0)
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except (OSError, ValueError):
        return False
silent = [a for a in peers if not answers(a)]
detail = ("no answer from " + ", ".join(silent)) if silent else (
    "every peer answers (" + ", ".join(peers) + ") but they did not join; check that all use the same --workers list")
sys.stderr.write(message.replace("DETAIL", detail) + "\n")
sys.stderr.flush()
os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def _startup_deadline(cluster: dict, seconds: int):
    """Ends this process with a one-line error if the cluster has not formed
    within `seconds`, naming the peers that do not answer.

    MultiWorkerMirroredStrategy's constructor waits for every worker to
    register without a time limit, holding Python's GIL (so neither a thread
    nor a signal handler here can run); a small watchdog process ends this
    one instead. Nothing has been written at this point. 0 waits forever.
    """
    if not seconds:
        yield
        return
    task = cluster["task"]
    me = cluster["cluster"][task["type"]][int(task["index"])]
    peers = [a for members in cluster["cluster"].values() for a in members if a != me]
    message = (f"error: the cluster did not form within train.worker_timeout_seconds={seconds} s: DETAIL; "
               "start every worker, check the addresses and that the ports are open")
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), message, *peers],
                                stdin=subprocess.PIPE)
    try:
        yield
    finally:
        watchdog.stdin.close()
        watchdog.wait()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The worker that writes checkpoints, logs and samples: the `chief`
    task, else worker 0; every process of a one-machine strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    if config.strategy == "auto":
        return tf.distribute.get_strategy()
    # Before anything lists devices: that starts TensorFlow's runtime, after
    # which collectives can no longer be configured.
    if config.strategy == "multi_worker":
        cluster = cluster_from_env()
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=config.worker_timeout_seconds or None)
        with _startup_deadline(cluster, config.worker_timeout_seconds):
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if config.strategy == "tpu":
        return _tpu_strategy(config.tpu)
    cpus = _split_cpu(config.cpu_devices) if config.cpu_devices > 1 else None
    gpus = tf.config.list_logical_devices("GPU")
    if config.strategy == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if config.strategy == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        devices = [d.name for d in (cpus or tf.config.list_logical_devices("CPU"))]
        # NCCL is GPU-only; CPU replicas reduce through one device.
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    raise UserError(f"train.strategy: unknown strategy {config.strategy!r}")


def _tpu_strategy(address: str) -> tf.distribute.Strategy:
    if not address:
        raise UserError("train.tpu: name the TPU for strategy tpu (its name, grpc://host:port, or 'local' on a TPU VM)")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"train.tpu: no TPU reachable at {address!r} ({first})") from None
    return tf.distribute.TPUStrategy(resolver)
