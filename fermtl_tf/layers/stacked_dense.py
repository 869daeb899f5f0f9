"""``StackedDense``: T task-specific dense layers held in one kernel with a trailing task axis.

Hu et al. 2018 (ECCV), §2.2 "Knowledge Sharing": per-layer parameters of the T same-shaped
task networks are stacked into a one-order-higher tensor (dense: 2-D -> 3-D) so that a tensor
trace norm can couple them (§2.1 matrix MTL is the special case of one dense layer, LAF).
"""

import keras
import tensorflow as tf

from fermtl_tf.layers.task_slices import add_task_kernel_and_bias, check_task_axis


@keras.saving.register_keras_serializable(package="fermtl_tf")
class StackedDense(keras.layers.Layer):
    """T independent ``Dense`` layers with kernel ``(d_in, units, T)`` and bias ``(units, T)``.

    Inputs ``(T, B, ..., d_in)`` -> outputs ``(T, B, ..., units)``; task ``t``'s rows use kernel
    slice ``[..., t]``. Each slice is initialised like a standard ``Dense`` kernel (fan-in
    ``d_in`` of one task). ``kernel_regularizer`` receives the whole 3-D kernel (e.g.
    ``TensorTraceNorm``).

    Example:
        >>> layer = StackedDense(4, num_tasks=2)
        >>> layer(tf.zeros((2, 8, 16))).shape
        TensorShape([2, 8, 4])
    """

    def __init__(
        self,
        units,
        num_tasks,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) < 1 or int(num_tasks) < 1:
            raise ValueError(f"units and num_tasks must be >= 1; got {units}, {num_tasks}.")
        self.units = int(units)
        self.num_tasks = int(num_tasks)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build(self, input_shape):
        check_task_axis(self.__class__.__name__, input_shape, self.num_tasks, min_rank=3)
        add_task_kernel_and_bias(self, (int(input_shape[-1]), self.units), self.units)

    def call(self, inputs):
        kernel = tf.cast(self.kernel, inputs.dtype)
        outputs = tf.einsum("t...i,iut->t...u", inputs, kernel)
        if self.use_bias:
            bias = tf.transpose(tf.cast(self.bias, outputs.dtype))
            outputs = outputs + tf.reshape(bias, [self.num_tasks] + [1] * (inputs.shape.rank - 2)
                                           + [self.units])
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            num_tasks=self.num_tasks,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
        )
        return config
