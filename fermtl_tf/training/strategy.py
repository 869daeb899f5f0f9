"""Choose the ``tf.distribute`` strategy named by a config.

* ``auto``: ``MirroredStrategy`` over all GPUs when there are two or more, else the
  default (no-op) strategy on the one device.
* ``mirrored``: ``MirroredStrategy`` over ``devices`` (default: every GPU, or the CPU).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from the
  ``TF_CONFIG`` environment variable, which must be set.
* ``one_device``: ``OneDeviceStrategy`` on the first GPU, or the CPU.

Batch sizes in configs are *global*: each of N replicas sees batch_size / N samples.

Multi-worker (``multi_worker``): every host runs the same command with its own
``TF_CONFIG``; :func:`worker_role` tells the chief (``chief`` task, else worker 0), which
owns the run folder, from the other workers, which write into a scratch folder
(``run_experiment``). Keras 3.15's TensorFlow trainer cannot ``fit`` under a multi-worker
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585, tensorflow/tensorflow#72388):
:func:`make_strategy` repairs the two places in ``keras.src.backend.tensorflow.trainer``
that fail (see :func:`_patch_keras_multi_worker`).
"""

import dataclasses
import functools
import json
import os

import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_tf_trainer

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")


def make_strategy(name="auto", devices=None):
    """Return the ``tf.distribute.Strategy`` called ``name`` (see the module docstring)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    if name == "multi_worker":  # before anything starts TensorFlow's context
        _check_tf_config()
        return _multi_worker_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


@functools.cache
def _multi_worker_strategy():
    """The process's one ``MultiWorkerMirroredStrategy``: it joins the cluster and
    configures collective ops, which a process can do once (a k-fold driver asks again
    for every round)."""
    _patch_keras_multi_worker()
    return tf.distribute.MultiWorkerMirroredStrategy()


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster: ``chief`` writes the run's files."""

    chief: bool = True
    index: int = 0
    num_workers: int = 1


def worker_role(strategy_name):
    """The :class:`WorkerRole` of this process for a config's ``strategy``.

    Without ``multi_worker`` (or without a cluster of several tasks) the process is the
    chief. Otherwise the Keras multi-worker convention: the ``chief`` task if the cluster
    has one, else worker 0.
    """
    if strategy_name != "multi_worker":
        return WorkerRole()
    cluster = _check_tf_config()
    tasks = cluster["cluster"]
    task = cluster["task"]
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in tasks)
    workers = sum(len(tasks.get(name, ())) for name in ("chief", "worker"))
    return WorkerRole(chief=chief, index=index if kind == "worker" else 0,
                      num_workers=workers)


def _local_value(strategy, value):
    """This worker's first replica's value of a ``DistributedValues`` (else ``value``)."""
    if isinstance(value, tf.distribute.DistributedValues):
        return strategy.experimental_local_results(value)[0]
    return value


def _patch_keras_multi_worker():
    """Repair Keras 3.15's ``fit`` under a multi-worker ``MultiWorkerMirroredStrategy``.

    Two functions of ``keras.src.backend.tensorflow.trainer`` fail there (measured with
    two CPU workers; keras-team/keras#20585):

    * ``TensorFlowTrainer._maybe_symbolic_build`` all-reduces the whole first batch (a
      nest of ``PerReplica``) with ``strategy.reduce``, which the collective strategy
      cannot convert ("Attempt to convert a value (PerReplica...) to a Tensor"). The
      batch only gives shapes and dtypes to build the optimiser and metrics, so this
      worker's own replica value serves (what Keras does on one worker).
    * ``reduce_per_replica`` averages the step's logs with ``strategy.reduce("MEAN", v,
      axis=0)``, which fails on the scalar logs ("Invalid reduction dimension 0 for input
      with 0 dimensions"); scalars are averaged over replicas with ``axis=None``, which
      is what ``axis=0`` means for them on one worker.

    Idempotent; single-worker strategies are untouched (the repaired paths are taken
    only in multi-worker mode).
    """
    trainer = keras_tf_trainer.TensorFlowTrainer
    if getattr(trainer, "_fermtl_multi_worker_patch", False):
        return
    original_build = trainer._maybe_symbolic_build
    original_reduce = keras_tf_trainer.reduce_per_replica

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not keras_tf_trainer._collective_all_reduce_multi_worker(
                strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(lambda v: _local_value(strategy, v),
                                               next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if (reduction not in ("auto", "mean")
                or not keras_tf_trainer._collective_all_reduce_multi_worker(strategy)):
            return original_reduce(values, strategy, reduction)

        def mean(value):
            scalar = _local_value(strategy, value).shape.rank == 0
            return strategy.reduce("MEAN", value, axis=None if scalar else 0)

        return tf.nest.map_structure(mean, values)

    trainer._maybe_symbolic_build = maybe_symbolic_build
    keras_tf_trainer.reduce_per_replica = reduce_per_replica
    trainer._fermtl_multi_worker_patch = True


def _check_tf_config():
    """Fail early and clearly when the multi-worker cluster is not described."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            "strategy 'multi_worker' needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}); it is not set'
        )
    try:
        cluster = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    if "cluster" not in cluster or "task" not in cluster:
        raise ValueError("TF_CONFIG must have 'cluster' and 'task' entries")
    return cluster
