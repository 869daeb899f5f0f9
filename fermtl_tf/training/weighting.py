"""The weighting axis: how named losses become one training objective.

A model's named losses come in two kinds (``MultiTaskSteps.compute_task_losses``):

* :class:`PerSample` ``(values [B], weights [B])`` — a task loss kept per sample with its
  presence weight, so that per-sample factors (MML's meta network, Li et al. 2023 Eq. 13)
  can re-weight samples *before* the one reduction, :func:`reduce_per_sample`, which
  keeps the replica-exact global denominator of ``fermtl_tf/losses/masked.py``;
* a scalar — a loss that is not a mean of per-sample terms (1 - CCC over the batch, a
  distribution-matching term, the ADA classifier's cross entropy).

:class:`Weighting` holds a lambda per name, constant or ramped linearly over training
(FERSNet's lambda_4 from 0.1 to 0.5, Zhao et al. §IV-B), and reduces and sums them.
"""

import collections

import keras
import tensorflow as tf

from fermtl_tf.losses.masked import reduce_per_sample

#: A per-sample loss: values [B] and presence weights [B] (sum w v / sum w is its mean).
PerSample = collections.namedtuple("PerSample", ["values", "weights"])


def reduce_loss(loss, scale=None):
    """The scalar (replica share) of a named loss; ``scale`` [B] re-weights a PerSample."""
    if isinstance(loss, PerSample):
        return reduce_per_sample(loss.values, loss.weights, scale)
    if scale is not None:
        raise ValueError("per-sample factors need a PerSample loss, got a scalar")
    return tf.cast(loss, tf.float32)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class Weighting:
    """Lambda per named loss: ``weights`` (constant) and ``ramps`` (linear in progress).

    Args:
        weights: ``{name: lambda}``; names absent get 1.0.
        ramps: ``{name: [start, end]}``: lambda goes linearly from ``start`` at step 0 to
            ``end`` at ``total_steps`` and stays there.
        total_steps: optimiser steps of the whole run (needed with ramps).
    """

    def __init__(self, weights=None, ramps=None, total_steps=None):
        self.weights = {name: float(w) for name, w in (weights or {}).items()}
        self.ramps = {name: [float(start), float(end)]
                      for name, (start, end) in (ramps or {}).items()}
        if self.ramps and not total_steps:
            raise ValueError(f"ramped weights {sorted(self.ramps)} need total_steps")
        self.total_steps = None if total_steps is None else int(total_steps)

    def names(self):
        """Every loss name with a weight or a ramp."""
        return [*self.weights, *(n for n in self.ramps if n not in self.weights)]

    def weight(self, name, step=None):
        """Lambda of ``name`` at optimiser step ``step`` (a tensor or int; ramps need it)."""
        if name not in self.ramps:
            return tf.constant(self.weights.get(name, 1.0), tf.float32)
        start, end = self.ramps[name]
        progress = tf.cast(step, tf.float32) / float(self.total_steps)
        return start + (end - start) * tf.clip_by_value(progress, 0.0, 1.0)

    def combine(self, losses, step=None, sample_scales=None):
        """sum_k lambda_k L_k, with ``sample_scales`` ``{name: [B]}`` applied to PerSample
        losses before their reduction."""
        sample_scales = sample_scales or {}
        terms = [self.weight(name, step) * reduce_loss(loss, sample_scales.get(name))
                 for name, loss in losses.items()]
        return tf.add_n(terms)

    def get_config(self):
        return {"weights": dict(self.weights), "ramps": dict(self.ramps),
                "total_steps": self.total_steps}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
