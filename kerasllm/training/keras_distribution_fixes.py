"""Workaround for Keras 3 `fit` under tf.distribute strategies
(keras-team/keras#20585: `fit` fails under MultiWorkerMirroredStrategy).

Two places in Keras' TensorFlow trainer assume a single worker:

1. `_maybe_symbolic_build` pulls the first batch out of the training data
   and, when it is distributed, averages it across replicas with
   `strategy.reduce` only to learn shapes and dtypes. Across workers that
   is a collective over integer token ids whose shapes differ from worker
   to worker; on one machine it still iterates the pipeline once more
   (filling shuffle buffers) and moves the shuffled order on by one pass,
   so the same run under `mirrored` sees other batches than on one device.
2. `reduce_per_replica` reduces every per-replica result with
   `strategy.reduce("MEAN", value, axis=0)` in multi-worker mode; the
   step's loss and metrics are scalars, which have no axis 0.

`apply()` replaces both, once per process: the symbolic build reads the
dataset's element spec (no batch taken, no collective), and multi-worker
mean reductions of scalars use `axis=None`. Everything else stays Keras'.
tests/test_distributed.py fails when either replacement stops being needed.
"""

from __future__ import annotations

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

_original_reduce_per_replica = tf_trainer.reduce_per_replica
_applied = False


def _symbolic_build_from_spec(self, iterator=None, data_batch=None):
    if self._distribute_strategy is None:
        return
    if iterator is not None:
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        # A dataset distributed per worker has per-replica specs; any
        # replica's spec gives the shapes and dtypes.
        data_batch = tf.nest.map_structure(lambda s: s._value_specs[0] if hasattr(s, "_value_specs") else s, spec)
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_per_replica(values, strategy, reduction):
    if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):

        def reduce(value):
            if tf_trainer._is_per_replica_instance(value) or isinstance(value, tf.Tensor):
                rank = value.values[0].shape.rank if tf_trainer._is_per_replica_instance(value) else value.shape.rank
                return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)
            return value

        return tf.nest.map_structure(reduce, values)
    return _original_reduce_per_replica(values, strategy, reduction)


def apply() -> None:
    global _applied
    if not _applied:
        tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _symbolic_build_from_spec
        tf_trainer.reduce_per_replica = _reduce_per_replica
        _applied = True
