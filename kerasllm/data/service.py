"""tf.data service: tokenizing the training text on other machines.

TensorFlow's own engine, not a home-made one: `kerasllm data-service
dispatcher` starts a `DispatchServer`, `kerasllm data-service worker` a
`WorkerServer` that registers with it, and a run with
`train.data_service: grpc://HOST:PORT` reads its training text through
them in `distributed_epoch` mode. The dispatcher hands each worker whole
files (the splits of the source), the worker reads, cleans, splits off the
validation text and tokenizes them, and the trainer receives token chunks.
Each pass over the service is one job, so every chunk of the training text
arrives exactly once per pass, from whichever worker made it.

What stays on the trainer is cheap: packing chunks into blocks, shuffling
and batching (packing there keeps documents whole across files handled by
different workers). Validation text is read locally. The order in which
workers deliver is not reproducible, so a resumed run starts a fresh pass
instead of skipping to the exact batch.

    kerasllm data-service dispatcher --port 5050
    kerasllm data-service worker --dispatcher host0:5050 --port 5051
    kerasllm train --config C --set train.data_service=grpc://host0:5050
"""

from __future__ import annotations

import socket
from typing import Optional

# parse_address lives in kerasllm.config, which checks train.data_service
# before anything of kerasllm.data loads (the config sits below the data layer).
from kerasllm.config import parse_address  # noqa: F401  (kerasllm.data.service.parse_address)
from kerasllm.errors import UserError


def check_reachable(address: str, timeout: float = 10.0, what: str = "train.data_service") -> None:
    """Fails in one line when nothing listens at the dispatcher's address
    (the service client would otherwise retry without end)."""
    from kerasllm import progress

    host, port = parse_address(address, what)
    try:
        with progress.phase(f"data service: connecting to the dispatcher at {host}:{port}"):
            socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise UserError(
            f"{what}: no dispatcher answers at {host}:{port} ({e.strerror or e}); "
            "start one with `kerasllm data-service dispatcher --port PORT`"
        ) from None


def distribute(dataset, address: str):
    """`dataset`, produced by the service's workers: one job per iteration,
    split by source file across the workers (`distributed_epoch`)."""
    import tensorflow as tf

    return dataset.apply(tf.data.experimental.service.distribute(processing_mode="distributed_epoch", service=address))


def start_dispatcher(port: int, work_dir: Optional[str] = None):
    """A running DispatchServer. With `work_dir` it journals its state there
    and can be restarted without losing its jobs."""
    import tensorflow as tf

    config = tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=bool(work_dir)
    )
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(dispatcher: str, port: int, host: str):
    """A running WorkerServer registered with `dispatcher` (host:port),
    telling the dispatcher and trainers to reach it at `host:port`."""
    dispatcher = dispatcher.removeprefix("grpc://")
    parse_address(f"grpc://{dispatcher}", "--dispatcher")
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizers' ops in this process)

    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher, worker_address=f"{host}:%port%", port=port
    )
    return tf.data.experimental.service.WorkerServer(config)
