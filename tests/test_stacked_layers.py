"""Stacked-task layers equal T independent Keras layers holding the same slices."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.layers import (
    CrossStitch,
    GradientReversal,
    StackedBatchNormalization,
    StackedConv2D,
    StackedDense,
    stacked_conv,
)
from fermtl_tf.layers.stacked_conv import grouped_gradient_problem, resolve_implementation
from fermtl_tf.methods.hu2018.stacked_resnet import build_stacked_resnet
from fermtl_tf.regularizers import TensorTraceNorm

T = 2


def random(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def per_task_conv2d(stacked, x):
    """Run T separate keras.layers.Conv2D holding the stacked layer's slices."""
    outputs = []
    for t in range(stacked.num_tasks):
        conv = keras.layers.Conv2D(
            stacked.filters, stacked.kernel_size, strides=stacked.strides,
            padding=stacked.padding, dilation_rate=stacked.dilation_rate,
            use_bias=stacked.use_bias)
        conv.build(x.shape[1:])
        weights = [stacked.kernel.numpy()[..., t]]
        if stacked.use_bias:
            weights.append(stacked.bias.numpy()[:, t])
        conv.set_weights(weights)
        outputs.append(conv(x[t]).numpy())
    return np.stack(outputs)


@pytest.mark.parametrize("implementation", ["loop", "grouped"])
@pytest.mark.parametrize("strides, padding, dilation, use_bias", [
    (1, "same", 1, True), (2, "valid", 1, False), (1, "valid", 2, True), ((2, 1), "same", 1, True),
])
def test_stacked_conv_equals_independent_conv2d(implementation, strides, padding, dilation,
                                                use_bias):
    x = random((T, 3, 9, 8, 4))
    layer = StackedConv2D(5, 3, T, strides=strides, padding=padding, dilation_rate=dilation,
                          use_bias=use_bias, bias_initializer="random_normal",
                          implementation=implementation)
    out = layer(x).numpy()
    np.testing.assert_allclose(out, per_task_conv2d(layer, x), rtol=1e-5, atol=1e-5)
    assert out.shape == layer.compute_output_shape(x.shape)


@pytest.mark.parametrize("implementation", ["loop", "grouped"])
@pytest.mark.parametrize("strides, padding", [(2, "same"), (2, "valid"), ((3, 2), "same")])
def test_strided_1x1_conv_equals_independent_conv2d(implementation, strides, padding):
    # The 1x1 strided kernel runs as subsampling + a stride-1 conv; odd sizes 9x8 included.
    x = random((T, 4, 9, 8, 4), seed=7)
    layer = StackedConv2D(5, 1, T, strides=strides, padding=padding,
                          bias_initializer="random_normal", implementation=implementation)
    out = layer(x).numpy()
    np.testing.assert_allclose(out, per_task_conv2d(layer, x), rtol=1e-5, atol=1e-5)
    assert out.shape == layer.compute_output_shape(x.shape)


def skip_without_grouped_gradients():
    """Skip (printing TensorFlow's reason) where this CPU cannot differentiate grouped convs."""
    problem = grouped_gradient_problem()
    if problem and not tf.config.list_physical_devices("GPU"):
        pytest.skip(f"grouped: unavailable: {problem}")


def test_grouped_and_loop_kernel_gradients_agree():
    skip_without_grouped_gradients()
    x = tf.constant(random((T, 2, 7, 7, 3)))
    grads = []
    for implementation in ("loop", "grouped"):
        layer = StackedConv2D(4, 3, T, padding="same", implementation=implementation,
                              kernel_initializer=keras.initializers.GlorotUniform(seed=1))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(x)))
        grads.append(tape.gradient(loss, layer.kernel).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_probe_agrees_with_differentiating_a_grouped_layer():
    # Independent of the probe's own ops: differentiate a real grouped StackedConv2D here.
    layer = StackedConv2D(2, 1, T, implementation="grouped")
    x = tf.constant(random((T, 2, 3, 3, 2)))
    try:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        tape.gradient(loss, layer.kernel).numpy()
        works = True
    except tf.errors.OpError:
        works = False
    problem = grouped_gradient_problem()
    assert (problem is None) == works, problem
    if problem:
        print(f"grouped: unavailable: {problem}")


def test_auto_runs_per_task_streams_on_a_cpu(monkeypatch):
    # Any CPU, whether or not it can differentiate grouped convolutions (not consulted).
    monkeypatch.setattr(stacked_conv, "grouped_gradient_problem", lambda: 1 / 0)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert resolve_implementation("auto") == "loop"
    assert StackedConv2D(4, 3, T)._implementation == "loop"
    layers = build_stacked_resnet(2, depth=18, width=2, input_shape=(16, 16, 3),
                                  stem="compact").layers
    assert any(layer.name == "unstack_tasks" for layer in layers)


def test_auto_is_grouped_on_a_gpu(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert resolve_implementation("auto") == "grouped"


def test_stacked_conv_takes_per_task_streams():
    x = random((T, 3, 9, 8, 4))
    layer = StackedConv2D(5, 3, T, strides=2, padding="same", activation="relu",
                          bias_initializer="random_normal", implementation="loop")
    outputs = layer([x[t] for t in range(T)])
    assert isinstance(outputs, list) and len(outputs) == T
    expected = np.maximum(per_task_conv2d(layer, x), 0.0)
    for t in range(T):
        np.testing.assert_allclose(outputs[t].numpy(), expected[t], rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape([(3, 9, 8, 4)] * T) == [(3, 5, 4, 5)] * T


def test_stacked_layers_reject_a_stream_list_of_the_wrong_length():
    with pytest.raises(ValueError, match="num_tasks=2; as a list"):
        StackedConv2D(4, 3, T)([random((1, 5, 5, 2))] * 3)
    with pytest.raises(ValueError, match="num_tasks=2; as a list"):
        StackedBatchNormalization(T)([random((1, 5, 2))])


def test_each_task_slice_initialised_with_single_task_fan_in():
    # VarianceScaling(fan_in, uniform): |w| <= sqrt(3 / fan_in), fan_in = kh*kw*cin of ONE task.
    init = keras.initializers.VarianceScaling(1.0, "fan_in", "uniform", seed=3)
    layer = StackedConv2D(64, 3, T, kernel_initializer=init)
    layer.build((T, None, 8, 8, 16))
    kernel = layer.kernel.numpy()
    bound = np.sqrt(3.0 / (3 * 3 * 16))
    for t in range(T):
        assert 0.95 * bound < np.abs(kernel[..., t]).max() <= bound
    assert not np.allclose(kernel[..., 0], kernel[..., 1])


def test_kernel_regularizer_sees_the_5d_kernel():
    reg = TensorTraceNorm("laf", strength=0.5)
    layer = StackedConv2D(3, 3, T, kernel_regularizer=reg)
    layer(random((T, 1, 5, 5, 2)))
    kernel = layer.kernel.numpy()
    assert kernel.shape == (3, 3, 2, 3, T)
    expected = 0.5 * np.linalg.svd(kernel.reshape(-1, T), compute_uv=False).sum()
    np.testing.assert_allclose(float(sum(layer.losses)), expected, rtol=1e-5)


def test_strides_with_dilation_are_rejected():
    with pytest.raises(ValueError, match="cannot be combined"):
        StackedConv2D(4, 3, T, strides=2, dilation_rate=2)


def test_wrong_task_axis_is_rejected():
    with pytest.raises(ValueError, match="num_tasks=2"):
        StackedConv2D(4, 3, T)(random((3, 1, 5, 5, 2)))


def test_unknown_implementation_is_rejected():
    with pytest.raises(ValueError, match="implementation must be one of"):
        resolve_implementation("vmap")


def test_stacked_dense_equals_independent_dense():
    x = random((T, 3, 4, 6))
    layer = StackedDense(5, T, bias_initializer="random_normal")
    out = layer(x).numpy()
    for t in range(T):
        dense = keras.layers.Dense(5)
        dense.build((None, 6))
        dense.set_weights([layer.kernel.numpy()[..., t], layer.bias.numpy()[:, t]])
        np.testing.assert_allclose(out[t], dense(x[t]).numpy(), rtol=1e-5, atol=1e-6)


def independent_batch_norms(stacked, input_shape):
    norms = []
    for t in range(stacked.num_tasks):
        bn = keras.layers.BatchNormalization(momentum=stacked.momentum, epsilon=stacked.epsilon)
        bn.build(input_shape[1:])
        bn.set_weights([w.numpy()[:, t] for w in (stacked.gamma, stacked.beta,
                                                   stacked.moving_mean, stacked.moving_variance)])
        norms.append(bn)
    return norms


def test_stacked_batch_norm_equals_independent_batch_norms_in_training():
    x = random((T, 6, 3, 3, 4)) + np.array([0.0, 5.0], "float32")[:, None, None, None, None]
    layer = StackedBatchNormalization(T, momentum=0.5, gamma_initializer="random_uniform",
                                      beta_initializer="random_normal")
    layer.build(x.shape)
    norms = independent_batch_norms(layer, x.shape)
    out = layer(x, training=True).numpy()
    for t, bn in enumerate(norms):
        np.testing.assert_allclose(out[t], bn(x[t], training=True).numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(layer.moving_mean.numpy()[:, t], bn.moving_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy()[:, t],
                                   bn.moving_variance.numpy(), rtol=1e-5, atol=1e-6)


def test_stacked_batch_norm_on_per_task_streams_equals_independent_batch_norms():
    x = random((T, 6, 3, 3, 4)) + np.array([0.0, 5.0], "float32")[:, None, None, None, None]
    layer = StackedBatchNormalization(T, momentum=0.5, gamma_initializer="random_uniform",
                                      beta_initializer="random_normal")
    layer.build([x.shape[1:]] * T)
    norms = independent_batch_norms(layer, x.shape)
    for training in (True, False):  # training first: inference then uses updated statistics
        outputs = layer([x[t] for t in range(T)], training=training)
        for t, bn in enumerate(norms):
            np.testing.assert_allclose(outputs[t].numpy(), bn(x[t], training=training).numpy(),
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(layer.moving_variance.numpy()[:, t],
                                       bn.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(layer.moving_mean.numpy()[:, t], bn.moving_mean.numpy(),
                                       rtol=1e-5, atol=1e-6)


def test_stacked_batch_norm_equals_independent_batch_norms_in_inference():
    x = random((T, 5, 4))
    layer = StackedBatchNormalization(T, moving_mean_initializer="random_normal",
                                      moving_variance_initializer="random_uniform")
    layer.build(x.shape)
    norms = independent_batch_norms(layer, x.shape)
    out = layer(x, training=False).numpy()
    for t, bn in enumerate(norms):
        np.testing.assert_allclose(out[t], bn(x[t], training=False).numpy(), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("layer", [
    StackedConv2D(4, (3, 1), T, strides=2, padding="same", activation="relu", use_bias=False,
                  kernel_regularizer=TensorTraceNorm("tt", 1e-3), implementation="loop"),
    StackedDense(3, T, kernel_regularizer=TensorTraceNorm("laf", 1e-2, svd="randomized")),
    StackedBatchNormalization(T, momentum=0.9, epsilon=1e-4, center=False),
])
def test_layer_config_round_trip(layer):
    restored = layer.__class__.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_model_with_every_new_layer_saves_and_loads(tmp_path):
    # The task axis T is Keras' leading ("batch") axis of the functional model.
    inputs = keras.Input((4, 6, 6, 3), batch_size=T)
    x = StackedConv2D(4, 3, T, padding="same", kernel_regularizer=TensorTraceNorm("tucker", 1e-3),
                      kernel_initializer=keras.initializers.GlorotUniform(seed=2))(inputs)
    x = StackedBatchNormalization(T)(x)
    x = CrossStitch(T, per_channel=True)(x)
    x = GradientReversal(0.5)(x)
    x = StackedDense(2, T, kernel_regularizer=TensorTraceNorm("laf", 1e-3))(x)
    model = keras.Model(inputs, x)
    data = random((T, 4, 6, 6, 3))
    path = tmp_path / "stacked.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(data).numpy(), model(data).numpy(), rtol=1e-6)
    np.testing.assert_allclose(float(sum(restored.losses)), float(sum(model.losses)), rtol=1e-6)


# --- the stacked ResNet in per-task streams ("loop") and stacked ("grouped") form -------------

NETWORK_OPTIONS = [{}, {"hard_shared_layers": 4}, {"cross_stitch": True}, {"stem": "imagenet"}]


def loop_and_grouped_networks(options):
    """The same stacked ResNet-18 built both ways, holding the same weights."""
    config = {"depth": 18, "width": 4, "input_shape": (16, 16, 3), "stem": "compact", **options}
    keras.utils.set_random_seed(3)
    grouped = build_stacked_resnet(T, implementation="grouped", **config)
    loop = build_stacked_resnet(T, implementation="loop", **config)
    assert [w.path for w in loop.weights] == [w.path for w in grouped.weights]
    loop.set_weights(grouped.get_weights())
    return loop, grouped


@pytest.mark.parametrize("options", NETWORK_OPTIONS)
def test_per_task_stream_network_equals_the_stacked_network(options):
    loop, grouped = loop_and_grouped_networks(options)
    assert any(layer.name == "unstack_tasks" for layer in loop.layers)
    assert not any(layer.name == "unstack_tasks" for layer in grouped.layers)
    x = random((T, 3, 16, 16, 3), seed=4)
    # Tolerance: the two forms sum the convolutions in different orders, and 18 layers of
    # training-mode batch norm over 3 images amplify that rounding (3e-4 seen without oneDNN).
    for training in (True, False):  # training also updates the moving statistics
        np.testing.assert_allclose(loop(x, training=training).numpy(),
                                   grouped(x, training=training).numpy(), rtol=1e-3, atol=1e-3)
    for a, b in zip(loop.non_trainable_weights, grouped.non_trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("options", [{}, {"hard_shared_layers": 4}])
def test_per_task_stream_network_gradients_equal_the_stacked_network(options):
    skip_without_grouped_gradients()
    loop, grouped = loop_and_grouped_networks(options)
    # Batch 3 with 1x1 stride-2 shortcuts: the case whose oneDNN gradient corrupts the heap
    # unless StackedConv2D subsamples first (see StackedConv2D._conv).
    x = tf.constant(random((T, 3, 16, 16, 3), seed=5))
    grads = []
    for network in (loop, grouped):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(network(x, training=True)))
        grads.append(tape.gradient(loss, network.trainable_weights))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4)


def test_per_task_stream_network_saves_and_loads(tmp_path):
    loop, _ = loop_and_grouped_networks({"cross_stitch": True, "hard_shared_layers": 2})
    path = tmp_path / "streams.keras"
    loop.save(path)
    restored = keras.saving.load_model(path)
    x = random((T, 2, 16, 16, 3), seed=6)
    np.testing.assert_allclose(restored(x).numpy(), loop(x).numpy(), rtol=1e-6, atol=1e-6)
