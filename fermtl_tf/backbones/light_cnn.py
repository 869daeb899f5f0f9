"""Light CNN-9 (Wu, He, Sun, "A Light CNN for Deep Face Representation with Noisy Labels",
IEEE TIFS 2018): the face-identity network of FERSNet's identity loss (Zhao et al., Eq. 9).

Built from max-feature-map (MFM) units: a convolution (or dense layer) with 2C outputs
whose two halves compete element-wise, ``MFM(x) = max(x[..., :C], x[..., C:])``. Layout
(the public ``LightCNN_9Layers``): 128x128 grey input in [0, 1] ->

    features.0  MFM conv 5x5, 48      -> max-pool 2x2
    features.2  MFM conv 1x1, 48;  MFM conv 3x3, 96   -> max-pool
    features.4  MFM conv 1x1, 96;  MFM conv 3x3, 192  -> max-pool
    features.6  MFM conv 1x1, 192; MFM conv 3x3, 128
    features.7  MFM conv 1x1, 128; MFM conv 3x3, 128  -> max-pool
    fc1         MFM dense, 256  (the identity feature)  [-> dropout -> fc2: identities]

Keras layer names mirror the PyTorch parameter names (``features.2.conv_a.filter`` ->
``features_2_conv_a``), and the flatten before ``fc1`` is in channel-first order, so a
PyTorch state dict converts by transposing each kernel (:func:`assign_pytorch_state_dict`;
see data_prep/light_cnn.md). The pretrained weights cannot be downloaded here: give a
file to :func:`load_light_cnn_weights`, or train this network on identity labels.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

#: (PyTorch module name, output channels, kernel size) of each MFM convolution, then
#: whether a 2x2 max-pool follows that group.
_CONV_GROUPS = (
    ((("features_0", 48, 5),), True),
    ((("features_2_conv_a", 48, 1), ("features_2_conv", 96, 3)), True),
    ((("features_4_conv_a", 96, 1), ("features_4_conv", 192, 3)), True),
    ((("features_6_conv_a", 192, 1), ("features_6_conv", 128, 3)), False),
    ((("features_7_conv_a", 128, 1), ("features_7_conv", 128, 3)), True),
)
FEATURE_SIZE = 256


@keras.saving.register_keras_serializable(package="fermtl_tf")
class MaxFeatureMap(keras.layers.Layer):
    """``max(x[..., :C], x[..., C:])`` over the last axis (2C -> C), Wu et al. §III-A.

    The first half competes with the second, as ``torch.split(x, C, 1)`` in the public
    implementation, so converted weights keep their meaning.
    """

    def call(self, inputs):
        first, second = tf.split(inputs, 2, axis=-1)
        return tf.maximum(first, second)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


def light_cnn_9(input_shape=(128, 128, 1), num_classes=None, dropout=0.5, name="light_cnn_9"):
    """The Light CNN-9 functional model.

    Returns a model from ``[B, H, W, 1]`` grey images in [0, 1] to the 256-d ``fc1``
    feature; with ``num_classes`` (identities, for training it on identity labels) the
    outputs are ``{"features": ..., "identity_logits": ...}``. H and W must be divisible
    by 16 (four 2x2 pools); the original is 128x128.
    """
    height, width = int(input_shape[0]), int(input_shape[1])
    if height % 16 or width % 16:
        raise ValueError(f"Light CNN-9 input height and width must be multiples of 16; got "
                         f"{input_shape}.")
    images = keras.Input(shape=tuple(input_shape), name="image")
    x = images
    for convolutions, pooled in _CONV_GROUPS:
        for layer_name, channels, kernel in convolutions:
            x = keras.layers.Conv2D(2 * channels, kernel, padding="same", name=layer_name)(x)
            x = MaxFeatureMap(name=f"{layer_name}_mfm")(x)
        if pooled:
            x = keras.layers.MaxPooling2D(2, name=f"{layer_name}_pool")(x)
    x = keras.layers.Permute((3, 1, 2), name="channels_first")(x)  # PyTorch's view(B, -1)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(2 * FEATURE_SIZE, name="fc1")(x)
    features = MaxFeatureMap(name="fc1_mfm")(x)
    if num_classes is None:
        return keras.Model(images, features, name=name)
    logits = keras.layers.Dense(int(num_classes), name="fc2")(
        keras.layers.Dropout(dropout, name="dropout")(features)
    )
    return keras.Model(images, {"features": features, "identity_logits": logits}, name=name)


def load_light_cnn_weights(model, path):
    """Load user-supplied Light CNN-9 weights into ``model`` (from :func:`light_cnn_9`).

    ``path`` is a ``.weights.h5`` file saved from a model of the same structure (e.g. the
    converted public checkpoint), or a ``.keras`` file of any Light CNN-9 of this package,
    with or without the ``fc2`` identity head; from a ``.keras`` file the layers are
    matched by name. A missing file or layer is an error naming it: an identity loss
    computed with random features would silently train towards nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Light CNN weights file not found: {path}")
    if path.name.endswith(".weights.h5"):
        model.load_weights(path)
        return model
    if path.suffix != ".keras":
        raise ValueError(f"Light CNN weights must be a .keras or .weights.h5 file; got {path}")
    source = keras.saving.load_model(path, compile=False)
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in source_layers:
            raise ValueError(f"{path} has no layer {layer.name!r}; is it a Light CNN-9?")
        layer.set_weights(source_layers[layer.name].get_weights())
    return model


def assign_pytorch_state_dict(model, state_dict):
    """Copy a PyTorch ``LightCNN_9Layers`` state dict (name -> numpy array) into ``model``.

    Names like ``module.features.2.conv_a.filter.weight`` map to the layer
    ``features_2_conv_a``; convolution kernels ``(out, in, kh, kw)`` become ``(kh, kw, in,
    out)``, dense kernels ``(out, in)`` become ``(in, out)``. Parameters of layers the
    model lacks (``fc2`` for a feature-only model) are skipped; a model layer with no
    parameters in ``state_dict`` is an error.
    """
    parameters = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        layer_path, _, kind = key.rpartition(".")
        layer_name = layer_path.removesuffix(".filter").replace(".", "_")
        parameters.setdefault(layer_name, {})[kind] = np.asarray(value)
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in parameters:
            raise KeyError(f"the state dict has no parameters for layer {layer.name!r}")
        kernel = parameters[layer.name]["weight"]
        kernel = kernel.transpose(2, 3, 1, 0) if kernel.ndim == 4 else kernel.T
        layer.set_weights([kernel, parameters[layer.name]["bias"]])
    return model
