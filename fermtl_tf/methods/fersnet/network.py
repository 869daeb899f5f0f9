"""The parts of FERSNet (Zhao et al., §III-A, Fig. 1, §IV-A) as functional Keras models.

* :func:`encoder`: the FER branch and the FES encoder, four conv blocks each
  (2 x [3x3 conv, BN, ReLU] + 2x2 max-pool), with a transference block of two ConvFLUs
  (FER <- FES and FES <- FER) after each block. ``sharing="hard"`` is one shared branch
  (Table VI, "w/o ConvFLU"); ``sharing="none"`` the FER branch alone ("w/o MTL").
* :func:`classifier`: f_cls, two fully connected layers -> E logits.
* :func:`transformer`: f_tra, target label (one-hot, E) -> FC -> 2x2 stride-2 transposed
  convolutions -> a map of the FES features' spatial size, fused by channel concatenation.
* :func:`decoder`: f_dec, four blocks (2 x [3x3 conv, BN, ReLU] + 2x2 stride-2 transposed
  conv) and an output 3x3 convolution to an image.
* :func:`discriminator`: the conditional PatchGAN D(z_t, I) (Isola et al. 2017).

Each is a functional model, so every weight exists as soon as it is built; the model of
``model.py`` composes them. Widths the paper does not give are arguments (defaults and
reasons in docs/FIDELITY.md, "FERSNet").
"""

import keras

from fermtl_tf.layers import ConvFLU

#: encoder sharing modes: ConvFLU soft sharing, one shared branch, FER branch alone.
SHARING_MODES = ("convflu", "hard", "none")
NUM_BLOCKS = 4


def conv_block(x, filters, momentum, name):
    """2 x [3x3 conv (stride 1, padding 1), BN, ReLU] (§IV-A); no pooling."""
    for index in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                name=f"{name}_conv{index}")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{index}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def _encoder_block(x, filters, momentum, name):
    x = conv_block(x, filters, momentum, name)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def encoder(image_shape, widths, sharing="convflu", momentum=0.9, name="encoder"):
    """Image -> ``{"fer_features", "fes_features"}`` (+ the ConvFLU gates).

    With ``sharing="convflu"`` the outputs also hold, for each block i = 1..4,
    ``fer_leaky_gate_i``/``fer_memory_gate_i`` (r, z of the ConvFLU feeding the FER
    branch, task x = FER, y = FES) and ``fes_leaky_gate_i``/``fes_memory_gate_i``. Both
    ConvFLUs of a transference block read the two branches' outputs of the same block,
    so the exchange is symmetric. ``sharing="none"`` has no ``fes_features``.
    """
    if sharing not in SHARING_MODES:
        raise ValueError(f"sharing must be one of {SHARING_MODES}; got {sharing!r}.")
    if len(widths) != NUM_BLOCKS:
        raise ValueError(f"FERSNet has {NUM_BLOCKS} encoder blocks; got widths {widths}.")
    images = keras.Input(shape=tuple(image_shape), name="image")
    fer = fes = images
    outputs = {}
    for index, filters in enumerate(widths, start=1):
        fer = _encoder_block(fer, filters, momentum, f"fer_block{index}")
        if sharing != "convflu":
            continue
        fes = _encoder_block(fes, filters, momentum, f"fes_block{index}")
        fer_new, r_fer, z_fer = ConvFLU(filters, name=f"fer_from_fes{index}")(fer, fes)
        fes_new, r_fes, z_fes = ConvFLU(filters, name=f"fes_from_fer{index}")(fes, fer)
        outputs.update({
            f"fer_leaky_gate_{index}": r_fer, f"fer_memory_gate_{index}": z_fer,
            f"fes_leaky_gate_{index}": r_fes, f"fes_memory_gate_{index}": z_fes,
        })
        fer, fes = fer_new, fes_new
    outputs["fer_features"] = fer
    if sharing == "hard":
        outputs["fes_features"] = fer
    elif sharing == "convflu":
        outputs["fes_features"] = fes
    return keras.Model(images, outputs, name=name)


def classifier(feature_shape, units, num_classes, name="classifier"):
    """f_cls: flatten -> FC(units) + ReLU -> FC(E) logits (§IV-A: two FC layers)."""
    features = keras.Input(shape=tuple(feature_shape), name="fer_features")
    x = keras.layers.Flatten(name="flatten")(features)
    x = keras.layers.Dense(units, activation="relu", name="fc1")(x)
    logits = keras.layers.Dense(num_classes, name="fc2")(x)
    return keras.Model(features, logits, name=name)


def transformer(num_classes, feature_size, channels, upsamplings=1, momentum=0.9,
                name="transformer"):
    """f_tra: one-hot target label -> FC -> ``upsamplings`` 2x2 stride-2 transposed convs.

    Output ``[B, h, w, channels]`` with ``(h, w) = feature_size``, the FES features' size
    (§III-A: "a feature map with the same size as the extracted FES features").
    """
    height, width = (int(v) for v in feature_size)
    scale = 2 ** int(upsamplings)
    if height % scale or width % scale:
        raise ValueError(
            f"transformer: FES feature size {feature_size} is not divisible by 2^{upsamplings};"
            " use fewer transformer_upsamplings or another image size."
        )
    label = keras.Input(shape=(num_classes,), name="target_expression")
    x = keras.layers.Dense(height // scale * width // scale * channels, activation="relu",
                           name="fc")(label)
    x = keras.layers.Reshape((height // scale, width // scale, channels), name="reshape")(x)
    for index in range(1, int(upsamplings) + 1):
        x = keras.layers.Conv2DTranspose(channels, 2, strides=2, use_bias=False,
                                         name=f"deconv{index}")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
    return keras.Model(label, x, name=name)


def decoder(input_shape, widths, output_activation="tanh", momentum=0.9, name="decoder"):
    """f_dec: four blocks of 2 x [3x3 conv, BN, ReLU] + 2x2 stride-2 transposed conv, then
    a 3x3 convolution to 3 channels with ``output_activation`` (the image range)."""
    if len(widths) != NUM_BLOCKS:
        raise ValueError(f"FERSNet has {NUM_BLOCKS} decoder blocks; got widths {widths}.")
    fused = keras.Input(shape=tuple(input_shape), name="fused_features")
    x = fused
    for index, filters in enumerate(widths, start=1):
        x = conv_block(x, filters, momentum, f"dec_block{index}")
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, use_bias=False,
                                         name=f"dec_block{index}_deconv")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"dec_block{index}_bn3")(x)
        x = keras.layers.ReLU(name=f"dec_block{index}_relu3")(x)
    image = keras.layers.Conv2D(3, 3, padding="same", activation=output_activation,
                                name="to_image")(x)
    return keras.Model(fused, image, name=name)


def discriminator(image_shape, num_classes, widths, momentum=0.9, name="discriminator"):
    """Conditional PatchGAN D(z_t, I) -> patch logits ``[B, h, w, 1]``.

    Isola et al.'s 70x70 PatchGAN (C64-C128-C256-C512: 4x4 convolutions, stride 2 but the
    last, LeakyReLU 0.2, BN on all but the first, then a 4x4 convolution to one logit per
    patch). The label conditions D as in conditional GANs: the one-hot z_t is tiled over
    the image and concatenated to its channels.
    """
    images = keras.Input(shape=tuple(image_shape), name="image")
    label = keras.Input(shape=(num_classes,), name="expression")
    tiled = keras.layers.Reshape((1, 1, num_classes), name="label_map")(label)
    tiled = keras.layers.UpSampling2D(tuple(image_shape[:2]), name="tile_label")(tiled)
    x = keras.layers.Concatenate(name="condition")([images, tiled])
    for index, filters in enumerate(widths, start=1):
        last = index == len(widths)
        x = keras.layers.Conv2D(filters, 4, strides=1 if last else 2, padding="same",
                                use_bias=index == 1, name=f"d_conv{index}")(x)
        if index > 1:
            x = keras.layers.BatchNormalization(momentum=momentum, name=f"d_bn{index}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"d_lrelu{index}")(x)
    logits = keras.layers.Conv2D(1, 4, padding="same", name="patch_logits")(x)
    return keras.Model([images, label], logits, name=name)
