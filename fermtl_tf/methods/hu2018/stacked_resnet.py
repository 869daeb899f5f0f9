"""T task networks of one ResNet-18/34 architecture, stacked layer by layer (Hu et al. 2018).

Hu et al. 2018 (ECCV), §2.2 "Knowledge Sharing": every task has its own network of the
same architecture and the parameters of each layer are stacked into a one-order-higher
tensor (conv kernels 4-D -> 5-D, ``StackedConv2D``), so that one tensor trace norm per
layer (Eqs. 1-3, ``TensorTraceNorm``) under a single strength couples all layers. §2.4: the
backbone is the 34-layer ResNet (33 convolutions + 1 FC, the FC being each task's head),
with average pooling over the final 3x3 map of a 96x96 input.

The network maps a task-stacked batch ``(T, B, H, W, 3)`` to pooled features
``(T, B, 8 * width)``: slice ``t`` is task ``t``'s network applied to slice ``t`` of the
input. Its structure and layer names follow ``fermtl_tf.backbones.resnet`` (stem,
four stages of BasicBlocks, 1x1 projection shortcuts where the shape changes, batch norm
epsilon 1e-5 / momentum 0.9, He-normal kernels, no conv bias), so a stacked network with
no sharing holds exactly T plain ResNets.

The same builder gives every sharing scheme of Table 4:

* **single task**: no regulariser, no hard sharing, no cross-stitch -> T independent nets.
* **trace norm** (LAF/Tucker/TT): ``kernel_regularizer`` on every stacked main-path conv
  (33 in ResNet-34; the 1x1 projection shortcuts, which the paper's count of 33 leaves
  out, only with ``regularize_shortcuts=True``).
* **hard sharing RN(k)**: the stem and the first ``k`` block convolutions (counted on the
  main path of the residual stages, so k = 6, 14, 26, 32 are the ends of ResNet-34's four
  stages, §4.2 "correspond to 4 residual units"), their batch norms and the projection
  shortcuts of those blocks hold ONE set of weights applied to every task's batch
  (``TaskShared``: the T task batches are folded into one batch). Batch-norm statistics of
  a shared layer are therefore computed over all tasks' images, as in one shared trunk.
* **cross-stitch** (Misra et al. 2016): a ``CrossStitch`` unit after every residual stage
  whose output is task specific.

Two internal forms compute the same function with the same weights (same names), chosen by
the resolved ``StackedConv2D`` implementation: with ``"grouped"`` the activations between
layers are task-stacked tensors ``(T, B, ...)``; with ``"loop"`` the input is unstacked once
into T per-task streams ``(B, ...)`` that stay apart until the pooled features are stacked,
so the network runs exactly the T single-task networks' operations (the stacked layers take
and return lists; only the kernels are stacked, for the trace norm) and pays no per-layer
stack/unstack copies. Only cross-stitch units (which mix tasks) stack the streams, and
shared layers concatenate them along the batch.
"""

import keras
import tensorflow as tf

from fermtl_tf.backbones.resnet import STAGE_BLOCKS, STEMS
from fermtl_tf.layers import CrossStitch, StackedBatchNormalization, StackedConv2D
from fermtl_tf.layers.stacked_conv import resolve_implementation
from fermtl_tf.layers.task_slices import is_per_task

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TaskShared(keras.layers.Wrapper):
    """Apply one ordinary layer to every task slice of ``(T, B, ...)`` with the same weights.

    The task and batch axes are folded into one batch axis ``(T * B, ...)``, the wrapped
    layer runs once, and the result is unfolded to ``(T, B, ...)``. This is hard parameter
    sharing (Hu et al. 2018, §2.1 "Deep Multi-Task Learning"): one set of variables serves
    every task. Layers with batch statistics (batch norm) see the union of the task batches.

    Example:
        >>> shared = TaskShared(keras.layers.Conv2D(8, 3, padding="same"))
        >>> shared(tf.zeros((2, 4, 16, 16, 3))).shape
        TensorShape([2, 4, 16, 16, 8])
    """

    def build(self, input_shape):
        if is_per_task(input_shape):  # per-task streams: T shapes (B, ...)
            input_shape = (len(input_shape), *input_shape[0])
        if len(input_shape) < 3:
            raise ValueError(f"TaskShared expects inputs (T, B, ...); got {tuple(input_shape)}")
        if not self.layer.built:
            self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        if is_per_task(inputs):
            sizes = [tf.shape(x)[0] for x in inputs]
            outputs = self.layer(tf.concat(inputs, axis=0), training=training)
            return tf.split(outputs, sizes, axis=0)
        num_tasks = inputs.shape[0] if inputs.shape[0] is not None else tf.shape(inputs)[0]
        shape = tf.shape(inputs)
        merged = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        outputs = self.layer(merged, training=training)
        out_shape = tf.shape(outputs)
        return tf.reshape(outputs, tf.concat([[num_tasks, -1], out_shape[1:]], axis=0))

    def compute_output_shape(self, input_shape):
        if is_per_task(input_shape):
            return [tuple(self.layer.compute_output_shape(tuple(shape))) for shape in input_shape]
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])


@keras.saving.register_keras_serializable(package="fermtl_tf")
class UnstackTasks(keras.layers.Layer):
    """``(T, B, ...) -> [T x (B, ...)]``: split a task-stacked tensor into per-task streams."""

    def __init__(self, num_tasks, **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = int(num_tasks)

    def call(self, inputs):
        return tf.unstack(inputs, self.num_tasks, axis=0)

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[1:])] * self.num_tasks

    def get_config(self):
        return {**super().get_config(), "num_tasks": self.num_tasks}


@keras.saving.register_keras_serializable(package="fermtl_tf")
class StackTasks(keras.layers.Layer):
    """``[T x (B, ...)] -> (T, B, ...)``: stack per-task streams on a leading task axis."""

    def call(self, inputs):
        return tf.stack(list(inputs), axis=0)

    def compute_output_shape(self, input_shape):
        return (len(input_shape), *input_shape[0])


def _elementwise(layer, *inputs):
    """A weightless elementwise layer (ReLU; Add of several inputs) on every task's activations:
    once per task on per-task streams, once on stacked tensors."""
    def apply(args):
        return layer(list(args)) if len(args) > 1 else layer(args[0])

    if is_per_task(inputs[0]):
        return [apply(args) for args in zip(*inputs, strict=True)]
    return apply(inputs)


def _pool(x, pool_class, name, **options):
    """A pooling layer on every task: on each per-task stream, or on a stacked tensor with the
    task axis folded into the batch (``TaskShared``)."""
    if is_per_task(x):
        pool = pool_class(name=name, **options)
        return [pool(stream) for stream in x]
    return TaskShared(pool_class(**options), name=name)(x)


def _cross_stitch(x, num_tasks, name):
    """A ``CrossStitch`` unit; it mixes the tasks, so per-task streams are stacked for it."""
    if not is_per_task(x):
        return CrossStitch(num_tasks, name=name)(x)
    stacked = StackTasks(name=f"{name}_stack")(x)
    mixed = CrossStitch(num_tasks, name=name)(stacked)
    return UnstackTasks(num_tasks, name=f"{name}_unstack")(mixed)


def main_path_conv_names(depth):
    """Names of the main-path convolutions in network order (33 for ResNet-34)."""
    names = ["stem_conv"]
    for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        for block in range(1, blocks + 1):
            names += [f"stage{stage}_block{block}_conv1", f"stage{stage}_block{block}_conv2"]
    return names


def hard_sharing_points(depth):
    """Valid ``hard_shared_layers`` values: 0 and every block boundary (even counts)."""
    return list(range(0, 2 * sum(STAGE_BLOCKS[depth]) + 1, 2))


def shared_layer_names(depth, hard_shared_layers):
    """Conv layers (main path and shortcuts) holding one kernel for all tasks under RN(k)."""
    if hard_shared_layers not in hard_sharing_points(depth):
        raise ValueError(
            f"hard_shared_layers for ResNet-{depth} must be a block boundary "
            f"{hard_sharing_points(depth)} (k counts block convolutions, stem excluded); "
            f"got {hard_shared_layers!r}")
    if hard_shared_layers == 0:
        return []
    names, remaining = ["stem_conv"], hard_shared_layers
    for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        for block in range(1, blocks + 1):
            if remaining == 0:
                return names
            prefix = f"stage{stage}_block{block}"
            names += [f"{prefix}_conv1", f"{prefix}_conv2"]
            if stage > 1 and block == 1:
                names.append(f"{prefix}_shortcut_conv")
            remaining -= 2
    return names


class _Builder:
    """Creates the conv + batch-norm (+ ReLU) units, stacked or task-shared by name."""

    def __init__(self, num_tasks, shared, kernel_regularizer, regularize_shortcuts,
                 implementation):
        self.num_tasks = num_tasks
        self.shared = set(shared)
        self.kernel_regularizer = kernel_regularizer
        self.regularize_shortcuts = regularize_shortcuts
        self.implementation = implementation

    def conv_bn(self, x, filters, kernel_size, strides, name, relu=True):
        if name in self.shared:
            x = TaskShared(keras.layers.Conv2D(
                filters, kernel_size, strides=strides, padding="same", use_bias=False,
                kernel_initializer="he_normal", name=name), name=f"{name}_shared")(x)
            x = TaskShared(keras.layers.BatchNormalization(
                epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"),
                name=f"{name}_bn_shared")(x)
        else:
            shortcut = name.endswith("_shortcut_conv")
            regularizer = (self.kernel_regularizer
                           if not shortcut or self.regularize_shortcuts else None)
            x = StackedConv2D(
                filters, kernel_size, self.num_tasks, strides=strides, padding="same",
                use_bias=False, kernel_initializer="he_normal", kernel_regularizer=regularizer,
                implementation=self.implementation, name=name)(x)
            x = StackedBatchNormalization(self.num_tasks, momentum=BN_MOMENTUM,
                                          epsilon=BN_EPSILON, name=f"{name}_bn")(x)
        if relu:
            x = _elementwise(keras.layers.ReLU(name=f"{name}_relu"), x)
        return x

    def block(self, x, filters, strides, name):
        """BasicBlock: two 3x3 convs plus identity (or 1x1 projection) shortcut, then ReLU."""
        shortcut = x
        channels = (x[0] if is_per_task(x) else x).shape[-1]
        if strides != 1 or channels != filters:
            shortcut = self.conv_bn(x, filters, 1, strides, f"{name}_shortcut_conv", relu=False)
        y = self.conv_bn(x, filters, 3, strides, f"{name}_conv1")
        y = self.conv_bn(y, filters, 3, 1, f"{name}_conv2", relu=False)
        y = _elementwise(keras.layers.Add(name=f"{name}_add"), shortcut, y)
        return _elementwise(keras.layers.ReLU(name=f"{name}_out"), y)


def build_stacked_resnet(num_tasks=2, depth=34, width=64, input_shape=(96, 96, 3),
                         stem="imagenet", hard_shared_layers=0, kernel_regularizer=None,
                         regularize_shortcuts=False, cross_stitch=False,
                         implementation="auto", name=None):
    """Build the stacked ResNet: ``(T, B, H, W, C)`` images -> ``(T, B, 8 * width)`` features.

    Args:
        num_tasks: T.
        depth, width, stem: as ``fermtl_tf.backbones.resnet.build_resnet``.
        input_shape: (H, W, C) of one task's (normalised) images.
        hard_shared_layers: k of RN(k), a block boundary (see ``hard_sharing_points``).
        kernel_regularizer: e.g. ``TensorTraceNorm``; attached to every stacked main-path
            conv kernel (and the stacked shortcuts with ``regularize_shortcuts``).
        cross_stitch: a ``CrossStitch`` unit after every task-specific residual stage.
        implementation: ``StackedConv2D`` implementation ("auto" | "loop" | "grouped"); it
            also picks the internal form (per-task streams for "loop", see the module
            docstring).
        name: model name (default ``stacked_resnet{depth}``).

    Example:
        >>> net = build_stacked_resnet(num_tasks=2, depth=18, width=8, input_shape=(32, 32, 3))
        >>> net(tf.zeros((2, 4, 32, 32, 3))).shape
        TensorShape([2, 4, 64])
    """
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"ResNet depth must be one of {sorted(STAGE_BLOCKS)}, got {depth!r}")
    if stem not in STEMS:
        raise ValueError(f"ResNet stem must be one of {STEMS}, got {stem!r}")
    if int(num_tasks) < 1 or int(width) < 1:
        raise ValueError(f"num_tasks and width must be >= 1, got {num_tasks}, {width}")
    shared = shared_layer_names(depth, hard_shared_layers)
    builder = _Builder(int(num_tasks), shared, kernel_regularizer, regularize_shortcuts,
                       implementation)
    inputs = keras.Input(batch_shape=(int(num_tasks), None, *input_shape), name="images")
    x = inputs
    if resolve_implementation(implementation) == "loop":
        x = UnstackTasks(int(num_tasks), name="unstack_tasks")(x)
    if stem == "imagenet":
        # ReLU after the max-pool: max_pool(relu(x)) == relu(max_pool(x)) exactly (ReLU is
        # monotonic), on a quarter of the elements. The order matters on TensorFlow 2.21:
        # Grappler's arithmetic optimizer rewrites MaxPool(Relu(t)) for itself and, when t is
        # output k > 0 of a multi-output op (the tf.split of a shared RN(k) stem), reads
        # output 0 instead: in every compiled inference graph (fit's validation, predict)
        # task 1 got task 0's stem features (tests/test_hu2018.py reproduces it).
        x = builder.conv_bn(x, width, 7, 2, "stem_conv", relu=False)
        x = _pool(x, keras.layers.MaxPooling2D, "stem_pool", pool_size=3, strides=2,
                  padding="same")
        x = _elementwise(keras.layers.ReLU(name="stem_conv_relu"), x)
    else:
        x = builder.conv_bn(x, width, 3, 1, "stem_conv")
    for stage, blocks in enumerate(STAGE_BLOCKS[depth], start=1):
        filters = int(width) * 2 ** (stage - 1)
        for block in range(1, blocks + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = builder.block(x, filters, strides, f"stage{stage}_block{block}")
        if cross_stitch and num_tasks > 1 and f"stage{stage}_block{blocks}_conv2" not in shared:
            x = _cross_stitch(x, int(num_tasks), f"stage{stage}_cross_stitch")
    features = _pool(x, keras.layers.GlobalAveragePooling2D, "avg_pool")
    if is_per_task(features):
        features = StackTasks(name="stack_tasks")(features)
    return keras.Model(inputs, features, name=name or f"stacked_resnet{depth}")


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TileTasks(keras.layers.Layer):
    """``[B, ...] -> (T, B, ...)``: the same batch for every task network (serving)."""

    def __init__(self, num_tasks, **kwargs):
        super().__init__(**kwargs)
        self.num_tasks = int(num_tasks)

    def call(self, inputs):
        return tf.stack([inputs] * self.num_tasks)

    def compute_output_shape(self, input_shape):
        return (self.num_tasks, *input_shape)

    def get_config(self):
        return {**super().get_config(), "num_tasks": self.num_tasks}


@keras.saving.register_keras_serializable(package="fermtl_tf")
class TaskSlice(keras.layers.Layer):
    """``(T, B, ...) -> [B, ...]``: task ``index``'s slice of a task-stacked tensor."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, inputs):
        return inputs[self.index]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}
