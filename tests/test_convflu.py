"""ConvFLU (Zhao et al., Eq. 1-4) against numpy written from the equations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.layers import ConvFLU


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _conv1x1(x, kernel):
    """1x1 convolution without bias: a matrix product over the channel axis."""
    return np.einsum("bhwi,io->bhwo", x, kernel[0, 0])


def convflu_numpy(f_x, f_y, w_r, w, u, w_z):
    """Eq. 1-4 literally."""
    both = np.concatenate([f_x, f_y], axis=-1)
    r = _sigmoid(_conv1x1(both, w_r))                                  # Eq. 1
    candidate = np.tanh(_conv1x1(r * f_y, w) + _conv1x1(f_x, u))      # Eq. 2
    z = _sigmoid(_conv1x1(both, w_z))                                  # Eq. 3
    return (1 - z) * f_x + z * candidate, r, z                          # Eq. 4


def _built(channels, f_x, f_y):
    unit = ConvFLU(channels)
    unit(f_x, f_y)
    return unit


def test_kernels_have_the_documented_names_and_shapes():
    x = np.zeros((2, 3, 3, 5), "float32")
    unit = _built(5, x, x)
    assert unit.w_r.shape == (1, 1, 10, 5)
    assert unit.w.shape == (1, 1, 5, 5)
    assert unit.u.shape == (1, 1, 5, 5)
    assert unit.w_z.shape == (1, 1, 10, 5)
    assert len(unit.trainable_weights) == 4  # no bias anywhere


def test_matches_equations_1_to_4():
    rng = np.random.default_rng(0)
    f_x = rng.standard_normal((2, 4, 3, 6)).astype("float32")
    f_y = rng.standard_normal((2, 4, 3, 6)).astype("float32")
    unit = _built(6, f_x, f_y)
    kernels = {}
    for name in ("w_r", "w", "u", "w_z"):
        value = rng.standard_normal(getattr(unit, name).shape).astype("float32")
        getattr(unit, name).assign(value)
        kernels[name] = value
    expected = convflu_numpy(f_x, f_y, **kernels)
    actual = unit(f_x, f_y)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_same_result_inside_tf_function():
    rng = np.random.default_rng(1)
    f_x, f_y = (rng.standard_normal((2, 3, 3, 4)).astype("float32") for _ in range(2))
    unit = _built(4, f_x, f_y)
    eager = unit(f_x, f_y)[0].numpy()
    graph = tf.function(lambda a, b: unit(a, b)[0])(f_x, f_y).numpy()
    np.testing.assert_allclose(graph, eager, rtol=1e-6, atol=1e-6)


def test_closed_memory_gate_returns_f_x_exactly():
    rng = np.random.default_rng(2)
    f_x = rng.uniform(0.5, 1.0, (2, 3, 3, 4)).astype("float32")
    f_y = rng.uniform(0.5, 1.0, (2, 3, 3, 4)).astype("float32")
    unit = _built(4, f_x, f_y)
    unit.w_z.assign(np.full(unit.w_z.shape, -1000.0, "float32"))  # z = σ(-large) = 0
    f_out, _, z = unit(f_x, f_y)
    np.testing.assert_array_equal(z.numpy(), 0.0)
    np.testing.assert_array_equal(f_out.numpy(), f_x)


def test_closed_leaky_gate_blocks_f_y():
    rng = np.random.default_rng(3)
    f_x = rng.uniform(0.5, 1.0, (2, 3, 3, 4)).astype("float32")
    unit = _built(4, f_x, f_x)
    unit.w_r.assign(np.full(unit.w_r.shape, -1000.0, "float32"))  # r = 0 for positive inputs
    w_z = rng.standard_normal(unit.w_z.shape).astype("float32")
    w_z[:, :, 4:, :] = 0.0  # z sees F_x only, so any dependence on F_y would come via r
    unit.w_z.assign(w_z)
    outputs = []
    for f_y in (rng.uniform(0.5, 1.0, f_x.shape), rng.uniform(0.5, 9.0, f_x.shape)):
        f_out, r, _ = unit(f_x, f_y.astype("float32"))
        np.testing.assert_array_equal(r.numpy(), 0.0)
        outputs.append(f_out.numpy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # and the candidate is tanh(U * F_x) alone (Eq. 2 with r = 0)
    z = _sigmoid(_conv1x1(np.concatenate([f_x, f_x], -1), w_z))
    expected = (1 - z) * f_x + z * np.tanh(_conv1x1(f_x, unit.u.numpy()))
    np.testing.assert_allclose(outputs[0], expected, rtol=1e-5, atol=1e-5)


def test_channel_mismatch_is_a_clear_error():
    unit = ConvFLU(4)
    with pytest.raises(ValueError, match=r"f_y of shape \[B, H, W, 4\]"):
        unit(tf.zeros((1, 2, 2, 4)), tf.zeros((1, 2, 2, 3)))


def test_config_round_trip():
    unit = ConvFLU(7, kernel_initializer="he_normal", name="flu")
    restored = keras.layers.deserialize(keras.layers.serialize(unit))
    assert isinstance(restored, ConvFLU)
    assert restored.get_config() == unit.get_config()


def test_keras_file_round_trip(tmp_path):
    f_x = keras.Input((3, 3, 4))
    f_y = keras.Input((3, 3, 4))
    model = keras.Model([f_x, f_y], ConvFLU(4)(f_x, f_y))
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((2, 3, 3, 4)).astype("float32") for _ in range(2))
    path = tmp_path / "flu.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    for got, want in zip(restored([a, b]), model([a, b]), strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
