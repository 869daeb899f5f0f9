"""Convolutional feature leaky unit (Zhao et al., "Deep Multi-task Learning for Facial
Expression Recognition and Synthesis Based on Selective Feature Sharing", §III-B, Fig. 2).

A GRU-like gate that lets task x take features from task y selectively. With F_x, F_y the
two tasks' feature maps of one layer (same shape, C channels) and ``*`` a 1x1 convolution
without bias (§IV-A: "filters of size 1x1, with padding 0 and stride 1"):

    r = σ(W_r * [F_x, F_y])                         leaky gate,  Eq. 1
    F̃ = tanh(W * (r ⊙ F_y) + U * F_x)              candidate,   Eq. 2
    z = σ(W_z * [F_x, F_y])                         memory gate, Eq. 3
    F_x' = (1 - z) ⊙ F_x + z ⊙ F̃                    output,      Eq. 4

r = 0 blocks F_y entirely; z = 0 returns F_x unchanged. The paper's appendix PyTorch
snippet computes something else (see docs/FIDELITY.md, "FERSNet"); this layer follows the
equations.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="fermtl_tf")
class ConvFLU(keras.layers.Layer):
    """Eq. 1-4 of Zhao et al.: ``convflu(f_x, f_y)`` returns ``(f_x_out, r, z)``.

    ``f_x`` and ``f_y`` are ``[B, H, W, channels]``. The four kernels are the attributes
    ``w_r``, ``w``, ``u``, ``w_z``, each ``(1, 1, C_in, channels)`` with ``C_in = 2 *
    channels`` for ``w_r`` and ``w_z`` (their input is ``[F_x, F_y]`` concatenated in that
    order on the channel axis) and ``C_in = channels`` for ``w`` (applied to ``r ⊙ F_y``)
    and ``u`` (applied to ``F_x``). The gates are returned as well so that they can be
    drawn as heat maps (the paper's Fig. 3).

    Example:
        >>> unit = ConvFLU(8)
        >>> f_out, r, z = unit(tf.ones((2, 4, 4, 8)), tf.zeros((2, 4, 4, 8)))
    """

    def __init__(self, channels, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 1:
            raise ValueError(f"ConvFLU channels must be >= 1; got {channels}.")
        self.channels = int(channels)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, f_x_shape, f_y_shape):
        for name, shape in (("f_x", f_x_shape), ("f_y", f_y_shape)):
            if len(shape) != 4 or shape[-1] != self.channels:
                raise ValueError(
                    f"ConvFLU({self.channels}) expects {name} of shape [B, H, W, "
                    f"{self.channels}]; got {tuple(shape)}."
                )
        two_c, c = 2 * self.channels, self.channels
        self.w_r = self._kernel("w_r", two_c)
        self.w = self._kernel("w", c)
        self.u = self._kernel("u", c)
        self.w_z = self._kernel("w_z", two_c)

    def _kernel(self, name, input_channels):
        return self.add_weight(
            name=name,
            shape=(1, 1, input_channels, self.channels),
            initializer=self.kernel_initializer,
        )

    @staticmethod
    def _conv(inputs, kernel):
        """1x1 convolution, stride 1, no padding, no bias (§IV-A)."""
        return tf.nn.conv2d(inputs, tf.cast(kernel, inputs.dtype), strides=1, padding="VALID")

    def call(self, f_x, f_y):
        both = tf.concat([f_x, f_y], axis=-1)
        r = tf.sigmoid(self._conv(both, self.w_r))
        candidate = tf.tanh(self._conv(r * f_y, self.w) + self._conv(f_x, self.u))
        z = tf.sigmoid(self._conv(both, self.w_z))
        return (1.0 - z) * f_x + z * candidate, r, z

    def compute_output_shape(self, f_x_shape, f_y_shape):
        return tuple(f_x_shape), tuple(f_x_shape), tuple(f_x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            channels=self.channels,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config
