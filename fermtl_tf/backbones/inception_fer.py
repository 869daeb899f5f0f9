"""The inception FER network of Mollahosseini et al. (WACV 2016) with PReLU units.

Liu et al. 2017, §4: "The convolutional groups of our network are based on the inception
FER network presented in [28]. We adopt the parametric rectified linear unit (PReLU) to
replace the conventional ReLU", on 48x48 grayscale crops (§5.1). The layer table of
Mollahosseini et al. (Table 1, 48x48 input), as we read it:

=============  ==========  ============  ==========================================
layer          kernel/str  output        branches (1x1 | 3x3 red, 3x3 | 5x5 red, 5x5 | pool proj)
=============  ==========  ============  ==========================================
conv1          7x7 / 2     24x24x64
pool1          3x3 / 2     12x12x64
conv2          1x1, 3x3    12x12x192     (1x1 reduction to 64, then 3x3 to 192)
pool2          3x3 / 2     6x6x192
inception 3a               6x6x256       64 | 96, 128 | 16, 32 | 32
inception 3b               6x6x480       128 | 128, 192 | 32, 96 | 64
pool3          3x3 / 2     3x3x480
inception 4a               3x3x512       192 | 96, 208 | 16, 48 | 64
avg pool                   512
=============  ==========  ============  ==========================================

Every convolution is followed by a channel-wise PReLU (He et al. 2015: one slope per
channel, shared over space). Pools use "same" padding so any input of at least 16x16
works. The fully connected layers are the method's (EC and ML branches, see
``fermtl_tf.methods.tuple_clusters.network``). Not reproduced (docs/FIDELITY.md): the
local response normalisation of GoogLeNet-style nets, which neither paper names;
``batch_norm=True`` adds batch normalisation after each convolution instead (off by
default). ``width`` scales every channel count (1.0 is the table; tests use less).
"""

import keras

#: Inception modules: name -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection).
INCEPTION_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
}


def _scaled(channels, width):
    return max(1, int(round(channels * width)))


def _conv(x, filters, kernel_size, name, strides=1, batch_norm=False, kernel_regularizer=None):
    """Convolution + optional batch norm + channel-wise PReLU."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                            use_bias=not batch_norm, kernel_initializer="he_normal",
                            kernel_regularizer=kernel_regularizer, name=name)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def _pool(x, name):
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name=name)(x)


def _inception(x, name, channels, width, **conv_kwargs):
    """Four parallel branches concatenated on channels (Szegedy et al. 2015, Fig. 2b)."""
    c1, c3r, c3, c5r, c5, cp = (_scaled(c, width) for c in channels)
    branch1 = _conv(x, c1, 1, f"inception{name}_1x1", **conv_kwargs)
    branch3 = _conv(_conv(x, c3r, 1, f"inception{name}_3x3_reduce", **conv_kwargs),
                    c3, 3, f"inception{name}_3x3", **conv_kwargs)
    branch5 = _conv(_conv(x, c5r, 1, f"inception{name}_5x5_reduce", **conv_kwargs),
                    c5, 5, f"inception{name}_5x5", **conv_kwargs)
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same",
                                       name=f"inception{name}_pool")(x)
    branch_pool = _conv(pooled, cp, 1, f"inception{name}_pool_proj", **conv_kwargs)
    return keras.layers.Concatenate(name=f"inception{name}_out")(
        [branch1, branch3, branch5, branch_pool])


def build_inception_fer(input_shape=(48, 48, 1), width=1.0, batch_norm=False,
                        weight_decay=0.0, name="inception_fer"):
    """Images ``[B, H, W, C]`` -> pooled features ``[B, 512 * width]`` (Mollahosseini Table 1).

    ``weight_decay`` adds an L2 penalty ``weight_decay / 2 * |W|^2`` per kernel (Caffe's
    weight decay; Liu et al. §5.2 use 1e-4 in pre-training).
    """
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    kwargs = dict(batch_norm=batch_norm, kernel_regularizer=regularizer)
    images = keras.Input(input_shape, name="image")
    x = _conv(images, _scaled(64, width), 7, "conv1", strides=2, **kwargs)
    x = _pool(x, "pool1")
    x = _conv(x, _scaled(64, width), 1, "conv2_reduce", **kwargs)
    x = _conv(x, _scaled(192, width), 3, "conv2", **kwargs)
    x = _pool(x, "pool2")
    x = _inception(x, "3a", INCEPTION_MODULES["3a"], width, **kwargs)
    x = _inception(x, "3b", INCEPTION_MODULES["3b"], width, **kwargs)
    x = _pool(x, "pool3")
    x = _inception(x, "4a", INCEPTION_MODULES["4a"], width, **kwargs)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(images, features, name=name)
