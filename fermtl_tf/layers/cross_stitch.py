"""Cross-stitch units (Misra, Shrivastava, Gupta, Hebert, CVPR 2016).

A learned linear mix of the T task streams: Misra et al. Eq. 1 for two tasks,
``[x̃_A; x̃_B] = [[α_AA, α_AB], [α_BA, α_BB]] [x_A; x_B]``, generalised to T tasks as
``x̃_t = Σ_s α_{t,s} x_s``. Hu et al. 2018 cite cross-stitch networks (their ref. [36]) as
a soft-sharing alternative; here it is one of the package's sharing choices.
"""

import keras
import numpy as np
import tensorflow as tf


def cross_stitch_init(num_tasks, init_self):
    """T x T matrix with ``init_self`` on the diagonal and ``(1 - init_self)/(T - 1)`` off it.

    Misra et al. (design decisions, initialisation of cross-stitch units) start from a
    convex combination (α_S, α_D) = (0.9, 0.1) for two tasks; for T tasks the remaining
    ``1 - α_S`` is split evenly so every row still sums to one.
    """
    off = (1.0 - init_self) / (num_tasks - 1)
    return np.full((num_tasks, num_tasks), off) + np.eye(num_tasks) * (init_self - off)


@keras.saving.register_keras_serializable(package="fermtl_tf")
class CrossStitch(keras.layers.Layer):
    """``output[t] = Σ_s α[t, s] · input[s]`` on a ``(T, B, ..., C)`` tensor.

    ``per_channel=False`` (default) learns one T x T matrix shared by all channels and
    positions, which is Misra et al.'s Eq. 1 as written (one α per pair of tasks).
    ``per_channel=True`` learns a separate T x T matrix for every channel (α has shape
    ``(T, T, C)``), the finer variant many reimplementations use. Both start from
    ``cross_stitch_init``: ``init_self`` on the diagonal, the rest split evenly. α is not
    constrained (no projection onto convex combinations). Misra et al. also scale the
    learning rate of α by 10^2-10^3; Keras has no per-variable learning rate, so that is
    left to the training configuration (e.g. an optimizer with per-variable multipliers).

    Example:
        >>> unit = CrossStitch(num_tasks=2)
        >>> unit(tf.ones((2, 4, 8))).shape
        TensorShape([2, 4, 8])
    """

    def __init__(self, num_tasks, init_self=0.9, per_channel=False, **kwargs):
        super().__init__(**kwargs)
        if int(num_tasks) < 2:
            raise ValueError(f"CrossStitch mixes tasks; num_tasks must be >= 2, got {num_tasks}.")
        if not 0.0 <= float(init_self) <= 1.0:
            raise ValueError(f"init_self must lie in [0, 1]; got {init_self}.")
        self.num_tasks = int(num_tasks)
        self.init_self = float(init_self)
        self.per_channel = bool(per_channel)

    def build(self, input_shape):
        if len(input_shape) < 2 or (input_shape[0] is not None
                                    and input_shape[0] != self.num_tasks):
            raise ValueError(
                f"CrossStitch(num_tasks={self.num_tasks}) expects inputs (T, B, ...) with "
                f"T={self.num_tasks}; got shape {tuple(input_shape)}."
            )
        matrix = cross_stitch_init(self.num_tasks, self.init_self)
        shape = (self.num_tasks, self.num_tasks)
        if self.per_channel:
            channels = int(input_shape[-1])
            matrix = np.repeat(matrix[..., None], channels, axis=-1)
            shape = (*shape, channels)
        self.alpha = self.add_weight(
            name="alpha", shape=shape, initializer=keras.initializers.Constant(matrix)
        )

    def call(self, inputs):
        alpha = tf.cast(self.alpha, inputs.dtype)
        if self.per_channel:
            return tf.einsum("tsc,s...c->t...c", alpha, inputs)
        return tf.einsum("ts,s...->t...", alpha, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_tasks=self.num_tasks, init_self=self.init_self, per_channel=self.per_channel
        )
        return config
