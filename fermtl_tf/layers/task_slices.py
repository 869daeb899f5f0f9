"""Helpers shared by the stacked-task layers: per-task initialisation and input checks.

A stacked weight carries the task axis last, e.g. a conv kernel of shape
``(kh, kw, c_in, c_out, T)``. Keras initialisers compute fan-in/fan-out from the *whole*
shape (for rank > 2: receptive field = product of all axes but the last two), so calling
``GlorotUniform`` on the 5-D shape would count ``c_out`` as part of the receptive field and
``T`` as the output depth. ``initialize_per_task`` instead draws every task slice exactly as a
standard single-task layer would draw its weight, then stacks the slices on the last axis.
"""

import keras
import tensorflow as tf


def _clone_for_task(initializer, task):
    """A copy of ``initializer`` that draws task ``task``'s slice.

    A Keras 3 random initialiser with an integer (or default) seed returns the same values on
    every call, so reusing one instance would give every task an identical slice. Integer seeds
    become ``seed + task`` (reproducible, distinct per task); a ``None`` seed gets a fresh
    default seed in the clone; a ``SeedGenerator`` seed advances by itself and is reused.
    """
    config = initializer.get_config()
    seed = config.get("seed")
    if "seed" not in config or isinstance(initializer.seed, keras.random.SeedGenerator):
        return initializer
    if isinstance(seed, int):
        config["seed"] = seed + task
    return initializer.__class__.from_config(config)


def initialize_per_task(initializer, num_tasks):
    """Return a Keras-compatible initializer for a weight whose last axis indexes tasks.

    Each slice ``[..., t]`` is ``initializer(shape[:-1])`` drawn independently, so a stacked
    layer starts from ``T`` independently initialised single-task layers (fan-in of one task).
    """
    initializer = keras.initializers.get(initializer)

    def init(shape, dtype=None):
        if shape[-1] != num_tasks:
            raise ValueError(f"Last axis of {shape} must be the task axis of size {num_tasks}.")
        slices = [
            _clone_for_task(initializer, t)(tuple(shape[:-1]), dtype=dtype)
            for t in range(num_tasks)
        ]
        return tf.stack([tf.convert_to_tensor(s) for s in slices], axis=-1)

    return init


def is_per_task(value):
    """True when ``value`` holds per-task streams: a list of T tensors (or of T shapes).

    The stacked layers accept a task-stacked tensor ``(T, B, ...)`` or the T task tensors
    ``(B, ...)`` as a list; the list form lets a network keep each task's activations apart
    between layers, with no stack/unstack copies (see ``StackedConv2D``).
    """
    return isinstance(value, (list, tuple)) and len(value) > 0 and not isinstance(
        value[0], (int, type(None)))


def check_task_axis(layer_name, input_shape, num_tasks, min_rank):
    """The stacked ``(T, B, ..., C)`` shape of the input; raise a clear error if it is not one.

    ``input_shape`` is either a stacked shape or a list of T per-task shapes ``(B, ..., C)``
    (which must agree but for the batch size).
    """
    if is_per_task(input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        if len(shapes) != num_tasks or len({shape[1:] for shape in shapes}) != 1:
            raise ValueError(
                f"{layer_name} was built for num_tasks={num_tasks}; as a list its input must "
                f"be {num_tasks} per-task tensors of one shape; got shapes {shapes}."
            )
        input_shape = (num_tasks, *shapes[0])
    input_shape = tuple(input_shape)
    if len(input_shape) < min_rank:
        raise ValueError(
            f"{layer_name} expects inputs of rank >= {min_rank} with a leading task axis "
            f"(T, B, ...); got shape {tuple(input_shape)}."
        )
    if input_shape[0] is not None and input_shape[0] != num_tasks:
        raise ValueError(
            f"{layer_name} was built for num_tasks={num_tasks} but the leading (task) axis of "
            f"the input has size {input_shape[0]} (shape {tuple(input_shape)})."
        )
    if input_shape[-1] is None:
        raise ValueError(f"{layer_name} needs a known channel (last) axis; got {input_shape}.")
    return input_shape


def add_task_kernel_and_bias(layer, kernel_shape, units):
    """Give ``layer`` a kernel ``(*kernel_shape, T)`` and, with ``use_bias``, a bias ``(units, T)``.

    Shared by the stacked conv and dense layers: the task axis is last, and each task
    slice is initialised like the kernel of a single-task layer (``initialize_per_task``).
    The layer must hold the usual ``kernel_*`` / ``bias_*`` attributes and ``num_tasks``.
    """
    layer.kernel = layer.add_weight(
        name="kernel",
        shape=(*kernel_shape, layer.num_tasks),
        initializer=initialize_per_task(layer.kernel_initializer, layer.num_tasks),
        regularizer=layer.kernel_regularizer,
        constraint=layer.kernel_constraint,
    )
    layer.bias = None
    if layer.use_bias:
        layer.bias = layer.add_weight(
            name="bias",
            shape=(units, layer.num_tasks),
            initializer=initialize_per_task(layer.bias_initializer, layer.num_tasks),
            regularizer=layer.bias_regularizer,
            constraint=layer.bias_constraint,
        )
