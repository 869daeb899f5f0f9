"""ResNet-18/34 with BasicBlock residual units, adapted to 96x96 faces.

He et al. (2016), Table 1: a stem, then four stages of BasicBlocks (two 3x3 convs each)
with [2, 2, 2, 2] blocks (ResNet-18) or [3, 4, 6, 3] blocks (ResNet-34), widths
``width * (1, 2, 4, 8)``; stages 2-4 halve the resolution in their first block, whose
shortcut is then a 1x1 projection (option B). ResNet-34 has 1 + 2 * 16 = 33
convolutions on its main path and one fully connected layer (the task head, added by the
model), as used by Hu et al. (2018), §2.4.

Stem and pooling (Hu et al. 2018, §2.4: "the original 34-layer ResNet has a 7x7 global
average pooling ... adapting to the 224x224 input. To adapt to our 96x96 input, we use
3x3 average pooling instead"):

* ``stem="imagenet"`` (default, the paper's setting): 7x7 stride-2 conv + 3x3 stride-2
  max-pool. A 96x96 input reaches stage 4 as a 3x3 map, so the global average pooling
  applied here *is* the paper's 3x3 average pooling.
* ``stem="compact"``: one 3x3 stride-1 conv and no max-pool, keeping 4x more resolution
  per side (a 96x96 input ends as 12x12; a 32x32 test input as 4x4). Useful for small
  inputs; 16x the compute of the imagenet stem.

Global average pooling is used in both cases so that any input size gives a vector.

Convolutions are named ``stem_conv``, ``stage{s}_block{b}_conv{1,2}`` (their batch norms
and ReLUs add ``_bn``/``_relu``),
``stage{s}_block{b}_shortcut_conv`` so that sharing schemes can address them.
"""

import keras

#: Blocks per stage for each supported depth (He et al. 2016, Table 1).
STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
STEMS = ("imagenet", "compact")


def _conv_bn_relu(x, filters, kernel_size, strides, name, sync_batch_norm, relu=True):
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=name,
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=1e-5, momentum=0.9, synchronized=sync_batch_norm, name=f"{name}_bn"
    )(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _basic_block(x, filters, strides, name, sync_batch_norm):
    """Two 3x3 convs plus identity (or 1x1 projection) shortcut, then ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn_relu(
            x, filters, 1, strides, f"{name}_shortcut_conv", sync_batch_norm, relu=False
        )
    y = _conv_bn_relu(x, filters, 3, strides, f"{name}_conv1", sync_batch_norm)
    y = _conv_bn_relu(y, filters, 3, 1, f"{name}_conv2", sync_batch_norm, relu=False)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_resnet(
    depth=34,
    width=64,
    input_shape=(96, 96, 3),
    stem="imagenet",
    sync_batch_norm=False,
    name=None,
):
    """Build a ResNet feature extractor: images -> pooled feature vector [B, 8 * width].

    Args:
        depth: 18 or 34.
        width: filters of the first stage (64 in He et al.); stages use 1x, 2x, 4x, 8x.
        input_shape: (H, W, C) of the (already normalised) images.
        stem: ``"imagenet"`` (paper) or ``"compact"`` (see the module docstring).
        sync_batch_norm: synchronise batch statistics across replicas, so that a
            distributed step equals a one-device step on the same global batch.
        name: model name (default ``resnet{depth}``).

    Example:
        >>> backbone = build_resnet(depth=18, width=64)
        >>> backbone.output_shape
        (None, 512)
    """
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}")
    if stem not in STEMS:
        raise ValueError(f"ResNet stem must be one of {STEMS}, got {stem!r}")
    if int(width) < 1:
        raise ValueError(f"ResNet width must be a positive integer, got {width!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if stem == "imagenet":
        x = _conv_bn_relu(inputs, width, 7, 2, "stem_conv", sync_batch_norm)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = _conv_bn_relu(inputs, width, 3, 1, "stem_conv", sync_batch_norm)
    for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        filters = int(width) * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block}", sync_batch_norm)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, features, name=name or f"resnet{depth}")
