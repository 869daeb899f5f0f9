"""Light CNN-9 (Wu et al. 2018): MFM, the PyTorch-layout conversion, the weights loader."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

_MODULE = Path(__file__).resolve().parents[1] / "fermtl_tf" / "backbones" / "light_cnn.py"
_spec = importlib.util.spec_from_file_location("light_cnn", _MODULE)
light_cnn = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(light_cnn)


def _conv_nchw(x, weight, bias):
    """PyTorch Conv2d (stride 1, padding k//2) in numpy, NCHW."""
    k = weight.shape[-1]
    pad = k // 2
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return np.einsum("bihwuv,oiuv->bohw", windows, weight) + bias[None, :, None, None]


def _mfm(x):
    half = x.shape[1] // 2
    return np.maximum(x[:, :half], x[:, half:])


def _pool(x):
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def _random_state_dict(rng, size):
    """A LightCNN_9Layers state dict with PyTorch names and shapes (``module.`` prefix)
    for ``size`` x ``size`` inputs (fc1 sees 128 x (size/16)^2 values)."""
    state, in_channels = {}, 1
    for convolutions, _ in light_cnn._CONV_GROUPS:
        for name, channels, kernel in convolutions:
            torch_name = name.replace("_conv", ".conv").replace("features_", "features.")
            state[f"module.{torch_name}.filter.weight"] = rng.standard_normal(
                (2 * channels, in_channels, kernel, kernel)) * 0.1
            state[f"module.{torch_name}.filter.bias"] = rng.standard_normal(2 * channels) * 0.1
            in_channels = channels
    state["module.fc1.filter.weight"] = rng.standard_normal((512, in_channels * (size // 16) ** 2)) * 0.1
    state["module.fc1.filter.bias"] = rng.standard_normal(512) * 0.1
    state["module.fc2.weight"] = rng.standard_normal((5, 256))
    state["module.fc2.bias"] = rng.standard_normal(5)
    return {k: v.astype("float32") for k, v in state.items()}


def _torch_forward(state, images_nchw):
    """LightCNN_9Layers.forward written from its definition (features, view, fc1)."""
    x = images_nchw
    for convolutions, pooled in light_cnn._CONV_GROUPS:
        for name, _, _ in convolutions:
            torch_name = name.replace("_conv", ".conv").replace("features_", "features.")
            x = _mfm(_conv_nchw(x, state[f"module.{torch_name}.filter.weight"],
                                state[f"module.{torch_name}.filter.bias"]))
        if pooled:
            x = _pool(x)
    flat = x.reshape(x.shape[0], -1)
    fc1 = flat @ state["module.fc1.filter.weight"].T + state["module.fc1.filter.bias"]
    return np.maximum(fc1[:, :256], fc1[:, 256:])


def test_max_feature_map_takes_the_max_of_the_two_halves():
    x = np.array([[1.0, -2.0, 3.0, 0.5, 4.0, -1.0]], "float32")
    np.testing.assert_array_equal(light_cnn.MaxFeatureMap()(x).numpy(), [[1.0, 4.0, 3.0]])


def test_converted_pytorch_weights_reproduce_the_pytorch_forward():
    rng = np.random.default_rng(0)
    state = _random_state_dict(rng, 32)
    model = light_cnn.light_cnn_9(input_shape=(32, 32, 1))
    light_cnn.assign_pytorch_state_dict(model, state)
    images = rng.uniform(0, 1, (2, 32, 32, 1)).astype("float32")
    expected = _torch_forward(state, images.transpose(0, 3, 1, 2))
    np.testing.assert_allclose(model(images).numpy(), expected, rtol=1e-3, atol=1e-3)


def test_identity_head_and_feature_size():
    model = light_cnn.light_cnn_9(input_shape=(16, 16, 1), num_classes=7)
    outputs = model(np.zeros((2, 16, 16, 1), "float32"))
    assert outputs["features"].shape == (2, 256)
    assert outputs["identity_logits"].shape == (2, 7)


def test_missing_weights_file_is_an_error_naming_it(tmp_path):
    model = light_cnn.light_cnn_9(input_shape=(16, 16, 1))
    missing = tmp_path / "lightcnn.weights.h5"
    with pytest.raises(FileNotFoundError, match="lightcnn.weights.h5"):
        light_cnn.load_light_cnn_weights(model, missing)


def test_keras_file_with_head_loads_into_feature_model(tmp_path):
    trained = light_cnn.light_cnn_9(input_shape=(16, 16, 1), num_classes=3)
    path = tmp_path / "identity.keras"
    trained.save(path)
    features = light_cnn.load_light_cnn_weights(light_cnn.light_cnn_9(input_shape=(16, 16, 1)),
                                                path)
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(features(images).numpy(),
                               trained(images, training=False)["features"].numpy(), rtol=1e-5)


def test_weights_h5_round_trip(tmp_path):
    source = light_cnn.light_cnn_9(input_shape=(16, 16, 1))
    path = tmp_path / "identity.weights.h5"
    source.save_weights(path)
    target = light_cnn.load_light_cnn_weights(light_cnn.light_cnn_9(input_shape=(16, 16, 1)),
                                              path)
    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_round_trip_of_the_model(tmp_path):
    model = light_cnn.light_cnn_9(input_shape=(16, 16, 1))
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    images = np.ones((2, 16, 16, 1), "float32")
    np.testing.assert_allclose(restored(images).numpy(), model(images).numpy(), rtol=1e-6)
