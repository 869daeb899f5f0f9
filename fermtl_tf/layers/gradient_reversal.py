"""Gradient reversal layer for adversarial domain alignment (ADA).

Hu et al. 2018 (ECCV), §2.3, Eq. 4: ``max_Θ* min_Φ ℓ(g_Φ([f_Θ1*(X1) ... f_ΘT*(XT)]), y)``.
The dataset classifier ``g_Φ`` minimises the cross-entropy while the feature extractors
``Θ*`` maximise it. Following Ganin & Lempitsky (ICML 2015, the paper's ref. [13]), the min-max
is solved in one backward pass by putting a gradient reversal layer between the features and
``g_Φ``: identity forward, gradient multiplied by ``-scale`` backward.

:class:`GradientReversalSchedule` ramps the scale as in Ganin & Lempitsky's experiments:
``λ_p = 2 / (1 + exp(-γ p)) - 1`` with γ = 10 and p the training progress from 0 to 1, which
suppresses the noisy domain-classifier signal early in training. Hu et al. 2018 state no
schedule; the configurations choose.
"""

import math

import keras
import tensorflow as tf


@tf.custom_gradient
def reverse_gradient(x, scale):
    """Identity on ``x``; backward returns ``-scale * dy`` for ``x`` and no gradient for scale."""

    def grad(dy):
        return -tf.cast(scale, dy.dtype) * dy, tf.zeros_like(scale)

    return tf.identity(x), grad


@keras.saving.register_keras_serializable(package="fermtl_tf")
class GradientReversal(keras.layers.Layer):
    """Identity forward; multiplies the incoming gradient by ``-scale`` backward.

    The scale lives in a non-trainable scalar weight (``scale_variable``) initialised from
    ``scale`` so that a callback can schedule it during training (e.g. Ganin & Lempitsky's
    ``2 / (1 + exp(-10 p)) - 1``) with ``layer.set_scale(value)`` without retracing the
    compiled step; ``get_config`` keeps the constructor value, the weight keeps the current one.
    Hu et al. 2018 do not state a schedule; that choice belongs to the training configuration.

    Example:
        >>> grl = GradientReversal(scale=0.5)
        >>> x = tf.ones((2, 3))
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(x)
        ...     y = tf.reduce_sum(grl(x))
        >>> tape.gradient(y, x)[0, 0].numpy()
        -0.5
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.scale_variable = self.add_weight(
            name="scale",
            shape=(),
            initializer=keras.initializers.Constant(self.scale),
            trainable=False,
            autocast=False,
        )

    def set_scale(self, value):
        """Set the current reversal strength (e.g. from a schedule callback)."""
        self.scale_variable.assign(float(value))

    def call(self, inputs):
        return reverse_gradient(inputs, tf.convert_to_tensor(self.scale_variable))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale)
        return config


def ganin_lambda(progress, gamma=10.0, max_scale=1.0):
    """Ganin & Lempitsky's reversal strength ``max_scale · (2 / (1 + exp(-γ p)) - 1)`` at
    progress ``p`` (clipped to [0, 1]): 0 at the start, ``max_scale · tanh(γ / 2)`` at the end."""
    p = min(max(float(progress), 0.0), 1.0)
    return float(max_scale) * (2.0 / (1.0 + math.exp(-float(gamma) * p)) - 1.0)


def _reversal_layers(layer):
    """Every ``GradientReversal`` reachable through ``.layers`` from ``layer``, once each."""
    found, stack, seen = [], [layer], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, GradientReversal):
            found.append(current)
        stack.extend(getattr(current, "layers", []))
    return found


class GradientReversalSchedule(keras.callbacks.Callback):
    """Set every ``GradientReversal`` layer of the model to :func:`ganin_lambda` of the
    training progress, before each step (``per="batch"``, Ganin & Lempitsky's p) or each
    epoch (``per="epoch"``).

    Progress ``p = (epoch · steps + batch) / (epochs · steps)`` from ``fit``'s ``epochs`` and
    ``steps`` (so a resumed run with ``initial_epoch`` continues the ramp), or
    ``steps_done / total_steps`` when ``total_steps`` is given (needed per batch when the
    dataset size is unknown). The layers hold the scale in a variable, so the compiled train
    step sees each new value without retracing. The current value is logged as
    ``reversal_scale``.

    Args:
        gamma: γ of the ramp (10 in Ganin & Lempitsky).
        max_scale: the final strength multiplier (the ``reversal_scale`` of a config).
        per: ``"batch"`` or ``"epoch"``.
        total_steps: optional number of training steps that make p = 1.
        layers: the ``GradientReversal`` layers to drive; default: all found in the model.

    Example:
        >>> model.fit(data, epochs=20, callbacks=[GradientReversalSchedule(max_scale=1.0)])
    """

    def __init__(self, gamma=10.0, max_scale=1.0, per="batch", total_steps=None, layers=None):
        super().__init__()
        if per not in ("batch", "epoch"):
            raise ValueError(f"per must be 'batch' or 'epoch'; got {per!r}")
        if total_steps is not None and int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1 or None; got {total_steps}")
        self.gamma = float(gamma)
        self.max_scale = float(max_scale)
        self.per = per
        self.total_steps = None if total_steps is None else int(total_steps)
        self.layers = None if layers is None else list(layers)
        self.scale = None
        self._epoch = 0
        self._steps_done = 0

    def on_train_begin(self, logs=None):
        if self.layers is None:
            self.layers = _reversal_layers(self.model)
        if not self.layers:
            raise ValueError(f"GradientReversalSchedule: model {self.model.name!r} has no "
                             "GradientReversal layer (pass layers=...)")
        if self.per == "batch" and self.total_steps is None and not self.params.get("steps"):
            raise ValueError("GradientReversalSchedule(per='batch') needs the number of "
                             "steps per epoch; pass total_steps= for a dataset of unknown size")
        self._steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.per == "epoch":
            self._set(epoch / max(int(self.params["epochs"]), 1))

    def on_train_batch_begin(self, batch, logs=None):
        if self.per != "batch":
            return
        if self.total_steps is not None:
            self._set(self._steps_done / self.total_steps)
        else:
            steps = int(self.params["steps"])
            self._set((self._epoch * steps + batch) / (int(self.params["epochs"]) * steps))

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.scale is not None:
            logs["reversal_scale"] = self.scale

    def _set(self, progress):
        self.scale = ganin_lambda(progress, self.gamma, self.max_scale)
        for layer in self.layers:
            layer.set_scale(self.scale)
