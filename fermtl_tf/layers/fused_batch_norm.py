"""``FusedBatchNormalization``: ``keras.layers.BatchNormalization`` whose training-mode
pass over NHWC float32 maps runs as TensorFlow's one fused kernel.

Keras 3 normalises in training mode with separate ops (moments: mean, squared difference,
mean; then subtract, rsqrt, multiply, add) and differentiates each of them; on CPU these
memory-bound passes over every activation took a quarter of a FERSNet training step at
96x96 (benchmarks/fersnet_step_profile.py); with the fused kernel the step is about 30 %
cheaper (benchmarks/fersnet_step.py). ``FusedBatchNormV3``
computes the same function, y = γ (x − μ_B) / sqrt(σ²_B + ε) + β with the batch mean and
*biased* batch variance, in one pass and its gradient (through μ_B and σ²_B) in one more.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="fermtl_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (same arguments, weights and moving-statistics
    update ``moving = moving * momentum + batch * (1 - momentum)`` with the biased batch
    variance) computed by the fused kernel in training mode.

    The fused path serves rank-4 channels-last float32 (or float16/bfloat16, normalised
    in float32 as Keras does) inputs without a mask or renormalisation; anything else,
    and inference, is Keras's own computation.
    """

    def _fusable(self, inputs, training, mask):
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3)
                and inputs.dtype in (tf.float32, tf.float16, tf.bfloat16))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, tf.float32)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The kernel returns the Bessel-corrected variance n/(n-1) σ²_B for a running
        # estimate; Keras tracks the biased σ²_B, which normalised ``outputs``.
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * tf.maximum(count - 1.0, 0.0) / count
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum + batch * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)
