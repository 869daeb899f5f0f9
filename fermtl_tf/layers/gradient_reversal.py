"""Gradient reversal layer for adversarial domain alignment (ADA).

Hu et al. 2018 (ECCV), §2.3, Eq. 4: ``max_Θ* min_Φ ℓ(g_Φ([f_Θ1*(X1) ... f_ΘT*(XT)]), y)``.
The dataset classifier ``g_Φ`` minimises the cross-entropy while the feature extractors
``Θ*`` maximise it. Following Ganin & Lempitsky (ICML 2015, the paper's ref. [13]), the min-max
is solved in one backward pass by putting a gradient reversal layer between the features and
``g_Φ``: identity forward, gradient multiplied by ``-scale`` backward.
"""

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
