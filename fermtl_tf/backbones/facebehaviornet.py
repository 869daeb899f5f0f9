"""FaceBehaviorNet's residual-unit network and the Table 4 comparison backbones.

Kollias et al., §3.3 and Fig. 1: FaceBehaviorNet "is based on residual units", every
convolution is followed by batch normalisation ('bn'), "the stride is equal to 2,
everywhere", the input is a 112x112x3 face with intensities in [-1, 1] (§4.3), and the
predictions of all tasks "are pooled from the same feature space". The figure's layer
list (kernel sizes, widths, number of units) is not in the text we have, so the network
below is our reading (recorded in docs/FIDELITY.md):

* a 3x3 stride-2 conv + bn + ReLU stem with ``width`` maps (112 -> 56);
* ``len(unit_widths)`` residual units, each halving the resolution: 3x3 stride-2 conv +
  bn + ReLU, 3x3 conv + bn, a 1x1 stride-2 projection shortcut + bn, addition, ReLU.
  Widths ``width * (1, 2, 4, 8)`` give 56 -> 28 -> 14 -> 7 -> 4;
* global average pooling to one feature vector (the shared feature space).

Stride 2 applies to every layer that changes resolution (the stem, the first conv and
the shortcut of each unit); the second conv of a unit keeps stride 1, since a residual
addition needs the two paths at the same resolution.

Table 4's MT-VGG-FACE, MT-ResNet and MT-DenseNet use ``keras.applications`` VGG16 (the
VGG-FACE layer layout), ResNet50 and DenseNet121 without their classifiers, randomly
initialised unless the user gives a weights file (nothing is downloaded).
"""

from pathlib import Path

import keras

#: Widths of the residual units as multiples of ``width``.
UNIT_MULTIPLIERS = (1, 2, 4, 8)
#: Backbone names of ``backbone.name`` and their keras.applications constructors.
APPLICATIONS = {"vgg16": "VGG16", "resnet50": "ResNet50", "densenet121": "DenseNet121"}


def _conv_bn(x, filters, kernel_size, strides, name):
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=False, kernel_initializer="he_normal", name=name)(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def _residual_unit(x, filters, name):
    """Stride-2 residual unit: conv-bn-relu, conv-bn, + projection shortcut, relu."""
    shortcut = _conv_bn(x, filters, 1, 2, f"{name}_shortcut_conv")
    y = keras.layers.ReLU(name=f"{name}_conv1_relu")(_conv_bn(x, filters, 3, 2, f"{name}_conv1"))
    y = _conv_bn(y, filters, 3, 1, f"{name}_conv2")
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")(
        [y, shortcut]))


def build_facebehaviornet_backbone(input_shape=(112, 112, 3), width=64,
                                   unit_multipliers=UNIT_MULTIPLIERS,
                                   name="facebehaviornet_backbone"):
    """The shared residual network of §3.3: images ``[B, H, W, 3]`` -> features ``[B, F]``.

    ``F = width * unit_multipliers[-1]``; every resolution change has stride 2.
    """
    images = keras.Input(input_shape, name="image")
    x = keras.layers.ReLU(name="stem_relu")(_conv_bn(images, width, 3, 2, "stem_conv"))
    for index, multiplier in enumerate(unit_multipliers, start=1):
        x = _residual_unit(x, int(width * multiplier), f"unit{index}")
    features = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(images, features, name=name)


def build_application_backbone(name, input_shape=(112, 112, 3), weights=None):
    """``keras.applications`` VGG16 / ResNet50 / DenseNet121 without top, average-pooled.

    ``weights``: None (random initialisation) or the path of a weights file the user
    supplies (e.g. converted VGG-FACE weights); it must exist, nothing is downloaded.
    """
    if name not in APPLICATIONS:
        raise ValueError(f"unknown application backbone {name!r}; known: {sorted(APPLICATIONS)}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"backbone weights file not found: {weights}")
    constructor = getattr(keras.applications, APPLICATIONS[name])
    return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape),
                       pooling="avg", name=f"{name}_backbone")


def build_backbone(name, input_shape=(112, 112, 3), width=64, weights=None):
    """The feature extractor named by ``backbone.name`` (FaceBehaviorNet or Table 4's)."""
    if name == "facebehaviornet":
        if weights is not None:
            raise ValueError("backbone 'facebehaviornet' takes no weights file; use init_from")
        return build_facebehaviornet_backbone(input_shape, width)
    return build_application_backbone(name, input_shape, weights)
