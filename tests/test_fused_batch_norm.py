"""FusedBatchNormalization against numpy written from the batch-norm definition (Ioffe &
Szegedy 2015, Alg. 1 and its backward pass) and against Keras's layer in inference."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.layers.fused_batch_norm import FusedBatchNormalization

EPSILON = 1e-3
MOMENTUM = 0.9


def _numpy_training(x, gamma, beta, upstream):
    """Training-mode output, batch mean, biased batch variance and the gradients of
    sum(upstream * y) w.r.t. x, gamma, beta, from the definition (NHWC, stats over N, H, W)."""
    axes = (0, 1, 2)
    mean = x.mean(axes)
    variance = ((x - mean) ** 2).mean(axes)
    inv_std = 1.0 / np.sqrt(variance + EPSILON)
    x_hat = (x - mean) * inv_std
    y = gamma * x_hat + beta
    d_gamma = (upstream * x_hat).sum(axes)
    d_beta = upstream.sum(axes)
    # dL/dx = γ/σ (g − mean(g) − x̂ mean(g x̂)): the gradient through μ_B and σ²_B too.
    d_x = gamma * inv_std * (upstream - upstream.mean(axes) - x_hat * (upstream * x_hat).mean(axes))
    return y, mean, variance, d_x, d_gamma, d_beta


def _layer(channels, **kwargs):
    layer = FusedBatchNormalization(momentum=MOMENTUM, epsilon=EPSILON, **kwargs)
    layer.build((None, 3, 5, channels))
    return layer


@pytest.mark.parametrize("compiled", [False, True])
def test_training_output_gradients_and_moving_statistics_match_the_definition(compiled):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 3, 5, 6)).astype(np.float32)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    layer = _layer(6)
    gamma, beta = rng.uniform(0.5, 2.0, 6), rng.normal(size=6)
    moving_mean, moving_variance = rng.normal(size=6), rng.uniform(0.5, 2.0, 6)
    layer.set_weights([w.astype(np.float32) for w in (gamma, beta, moving_mean,
                                                         moving_variance)])

    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(outputs * upstream)
        return (outputs, *tape.gradient(loss, [inputs, layer.gamma, layer.beta]))

    step = tf.function(forward_backward) if compiled else forward_backward
    y, d_x, d_gamma, d_beta = (v.numpy() for v in step(tf.constant(x)))
    want = _numpy_training(x.astype(np.float64), gamma, beta, upstream.astype(np.float64))
    for got, expected in zip((y, d_x, d_gamma, d_beta), (want[0], *want[3:]), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.moving_mean.numpy(),
                               MOMENTUM * moving_mean + (1 - MOMENTUM) * want[1], rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(),  # biased, as Keras tracks it
                               MOMENTUM * moving_variance + (1 - MOMENTUM) * want[2],
                               rtol=1e-5)


def test_without_scale_and_center_normalises_to_zero_mean_unit_variance():
    x = np.random.default_rng(1).normal(5.0, 2.0, (3, 4, 4, 2)).astype(np.float32)
    y = _layer(2, scale=False, center=False)(x, training=True).numpy()
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0.0, atol=1e-5)
    variance = x.astype(np.float64).var((0, 1, 2))
    np.testing.assert_allclose(y.var((0, 1, 2)), variance / (variance + EPSILON), rtol=1e-4)


def test_inference_and_frozen_layers_use_the_moving_statistics():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    layer = _layer(4)
    weights = [rng.uniform(0.5, 2.0, 4).astype(np.float32) for _ in range(4)]
    layer.set_weights(weights)
    gamma, beta, mean, variance = weights
    want = gamma * (x - mean) / np.sqrt(variance + EPSILON) + beta
    np.testing.assert_allclose(layer(x, training=False).numpy(), want, rtol=1e-5, atol=1e-5)
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True).numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean)  # not updated when frozen


def test_serialises_in_a_model(tmp_path):
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, FusedBatchNormalization(momentum=0.8, name="bn")(inputs))
    model.layers[-1].set_weights([np.full(3, v, np.float32) for v in (2.0, 1.0, 0.5, 4.0)])
    model.save(tmp_path / "bn.keras")
    loaded = keras.saving.load_model(tmp_path / "bn.keras")
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    assert loaded.get_layer("bn").momentum == pytest.approx(0.8)
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy())
