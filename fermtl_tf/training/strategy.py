"""Choose the ``tf.distribute`` strategy named by a config.

* ``auto``: ``MirroredStrategy`` over all GPUs when there are two or more, else the
  default (no-op) strategy on the one device.
* ``mirrored``: ``MirroredStrategy`` over ``devices`` (default: every GPU, or the CPU).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from the
  ``TF_CONFIG`` environment variable, which must be set.
* ``one_device``: ``OneDeviceStrategy`` on the first GPU, or the CPU.

Batch sizes in configs are *global*: each of N replicas sees batch_size / N samples.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")


def make_strategy(name="auto", devices=None):
    """Return the ``tf.distribute.Strategy`` called ``name`` (see the module docstring)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")


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
