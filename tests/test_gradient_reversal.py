"""GradientReversal: identity forward, -scale * gradient backward (Hu et al. 2018, §2.3)."""

import keras
import numpy as np
import tensorflow as tf

from fermtl_tf.layers import GradientReversal


def gradient_through(layer, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * upstream)
    return y.numpy(), tape.gradient(loss, x).numpy()


def test_forward_is_identity():
    x = np.arange(6, dtype="float32").reshape(2, 3)
    y, _ = gradient_through(GradientReversal(2.0), x, np.ones((2, 3), "float32"))
    np.testing.assert_array_equal(y, x)


def test_backward_negates_and_scales_gradient():
    upstream = np.array([[1.0, -2.0, 3.0]], "float32")
    _, grad = gradient_through(GradientReversal(0.25), np.ones((1, 3), "float32"), upstream)
    np.testing.assert_allclose(grad, [[-0.25, 0.5, -0.75]])


def test_default_scale_negates_gradient():
    _, grad = gradient_through(GradientReversal(), np.ones((2,), "float32"),
                               np.array([4.0, -1.0], "float32"))
    np.testing.assert_allclose(grad, [-4.0, 1.0])


def test_set_scale_takes_effect_inside_compiled_step():
    layer = GradientReversal(1.0)
    x = tf.ones((3,))

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad().numpy(), [-1.0] * 3)
    layer.set_scale(3.0)
    np.testing.assert_allclose(grad().numpy(), [-3.0] * 3)


def test_config_round_trip():
    layer = GradientReversal(0.3, name="grl")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, GradientReversal)
    assert restored.get_config() == layer.get_config()
