"""``StackedBatchNormalization``: batch normalisation with separate statistics per task.

In Hu et al. 2018 (ECCV, §2.2, §2.4) every task has its own ResNet-34, stacked layer by layer;
each task's batch-norm layers therefore see only that task's batch. Pooling statistics across
the task axis would mix the two datasets (LSEMSW and 300-W), which is exactly the distribution
shift §2.3 tries to remove, so statistics are computed per task.
"""

import keras
import tensorflow as tf

from fermtl_tf.layers.task_slices import check_task_axis, initialize_per_task, is_per_task


@keras.saving.register_keras_serializable(package="fermtl_tf")
class StackedBatchNormalization(keras.layers.Layer):
    """T independent ``BatchNormalization`` layers over the channel (last) axis.

    Inputs ``(T, B, ..., C)``. In training (and when the layer is trainable) task ``t`` is
    normalised with the mean and biased variance of ``x[t]`` over all axes but the channel
    axis, and its moving statistics are updated as in ``keras.layers.BatchNormalization``
    (``moving = moving * momentum + batch * (1 - momentum)``); in inference the moving
    statistics of task ``t`` are used. ``gamma``, ``beta``, ``moving_mean`` and
    ``moving_variance`` have shape ``(C, T)``: the task axis is last, like every stacked weight.
    Float16/bfloat16 inputs are normalised in float32, as Keras does. A list of T task tensors
    ``(B, ..., C)`` is accepted too and gives a list back (per-task streams, see
    ``StackedConv2D``): the same function, without a stacked copy of the activations.

    Example:
        >>> layer = StackedBatchNormalization(num_tasks=2)
        >>> layer(tf.zeros((2, 4, 8, 8, 16)), training=True).shape
        TensorShape([2, 4, 8, 8, 16])
    """

    def __init__(
        self,
        num_tasks,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_tasks) < 1:
            raise ValueError(f"num_tasks must be >= 1; got {num_tasks}.")
        self.num_tasks = int(num_tasks)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = keras.initializers.get(beta_initializer)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)
        self.moving_mean_initializer = keras.initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = keras.initializers.get(moving_variance_initializer)
        self.beta_regularizer = keras.regularizers.get(beta_regularizer)
        self.gamma_regularizer = keras.regularizers.get(gamma_regularizer)

    def build(self, input_shape):
        input_shape = check_task_axis(self.__class__.__name__, input_shape, self.num_tasks,
                                      min_rank=3)
        shape = (int(input_shape[-1]), self.num_tasks)

        def weight(name, initializer, trainable, regularizer=None):
            return self.add_weight(
                name=name,
                shape=shape,
                initializer=initialize_per_task(initializer, self.num_tasks),
                regularizer=regularizer,
                trainable=trainable,
                autocast=False,
            )

        self.gamma = self.beta = None
        if self.scale:
            self.gamma = weight("gamma", self.gamma_initializer, True, self.gamma_regularizer)
        if self.center:
            self.beta = weight("beta", self.beta_initializer, True, self.beta_regularizer)
        self.moving_mean = weight("moving_mean", self.moving_mean_initializer, False)
        self.moving_variance = weight("moving_variance", self.moving_variance_initializer, False)

    def _broadcastable(self, value, rank):
        """(C, T) -> (T, 1, ..., 1, C), broadcastable against a rank-``rank`` input."""
        return tf.reshape(tf.transpose(value), [self.num_tasks] + [1] * (rank - 2) + [-1])

    def _to_weight_layout(self, value):
        """(T, 1, ..., 1, C) -> (C, T)."""
        return tf.transpose(tf.reshape(value, [self.num_tasks, -1]))

    def _update_moving_statistics(self, mean, variance):
        """``moving = moving * momentum + batch * (1 - momentum)``; statistics as ``(C, T)``."""
        m = self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * m + tf.cast(batch, moving.dtype) * (1.0 - m))

    def _compute_dtype_of(self, inputs):
        return tf.float32 if inputs.dtype in (tf.float16, tf.bfloat16) else inputs.dtype

    def call(self, inputs, training=None):
        if is_per_task(inputs):
            return self._call_per_task(list(inputs), training)
        compute_dtype = self._compute_dtype_of(inputs)
        x = tf.cast(inputs, compute_dtype)
        rank = x.shape.rank
        if training and self.trainable:
            mean, variance = tf.nn.moments(x, axes=list(range(1, rank - 1)), keepdims=True)
            self._update_moving_statistics(self._to_weight_layout(mean),
                                           self._to_weight_layout(variance))
        else:
            mean = self._broadcastable(tf.cast(self.moving_mean, compute_dtype), rank)
            variance = self._broadcastable(tf.cast(self.moving_variance, compute_dtype), rank)
        gamma = self._broadcastable(tf.cast(self.gamma, compute_dtype), rank) if self.scale else None
        beta = self._broadcastable(tf.cast(self.beta, compute_dtype), rank) if self.center else None
        outputs = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)
        return tf.cast(outputs, self.compute_dtype)

    def _columns(self, weight, dtype):
        """The T task columns of a ``(C, T)`` weight (T Nones for an absent weight)."""
        if weight is None:
            return [None] * self.num_tasks
        return tf.unstack(tf.cast(weight, dtype), self.num_tasks, axis=-1)

    def _call_per_task(self, inputs, training):
        """A list of T task tensors in, a list of T out: exactly T ``BatchNormalization`` calls
        (``tf.nn.moments`` + ``tf.nn.batch_normalization`` per task, as Keras computes them)."""
        compute_dtype = self._compute_dtype_of(inputs[0])
        xs = [tf.cast(x, compute_dtype) for x in inputs]
        if training and self.trainable:
            moments = [tf.nn.moments(x, axes=list(range(x.shape.rank - 1))) for x in xs]
            means, variances = [m for m, _ in moments], [v for _, v in moments]
            self._update_moving_statistics(tf.stack(means, axis=-1),
                                           tf.stack(variances, axis=-1))
        else:
            means = self._columns(self.moving_mean, compute_dtype)
            variances = self._columns(self.moving_variance, compute_dtype)
        task_weights = zip(xs, means, variances, self._columns(self.beta, compute_dtype),
                           self._columns(self.gamma, compute_dtype), strict=True)
        return [tf.cast(tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon),
                        self.compute_dtype)
                for x, mean, variance, beta, gamma in task_weights]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_tasks=self.num_tasks,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=keras.initializers.serialize(self.beta_initializer),
            gamma_initializer=keras.initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=keras.initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=keras.initializers.serialize(
                self.moving_variance_initializer
            ),
            beta_regularizer=keras.regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=keras.regularizers.serialize(self.gamma_regularizer),
        )
        return config
