"""``StackedConv2D``: T task-specific 2-D convolutions held in one 5-D kernel.

Hu et al. 2018 (ECCV), §2.2 "Knowledge Sharing": the T per-task networks share one
architecture and the parameters of each layer are stacked into a one-order-higher tensor
(conv: 4-D -> 5-D) so that a tensor trace norm (``fermtl_tf.regularizers.TensorTraceNorm``,
Eqs. 1-3) can couple them. This layer owns that stacked kernel.
"""

import functools
import re

import keras
import tensorflow as tf

from fermtl_tf.layers.task_slices import add_task_kernel_and_bias, check_task_axis, is_per_task

IMPLEMENTATIONS = ("auto", "loop", "grouped")


@functools.cache
def grouped_gradient_problem():
    """Why this TensorFlow build cannot differentiate a grouped convolution on the CPU, or None.

    With oneDNN (the x86-64 Linux default on CPUs with AVX-512) it can; without it (AMD EPYC
    without AVX-512, ``TF_ENABLE_ONEDNN_OPTS=0``, some ARM/macOS builds) TensorFlow raises
    "Gradients for grouped convolutions are not supported on CPU". Probed once, eagerly, by
    running both gradient ops of a 2-group convolution on a 1x1x1x2 input; the returned text is
    TensorFlow's own message, for skips and benchmark reports.
    """
    with tf.init_scope(), tf.device("/CPU:0"):
        x, kernel, dy = tf.ones((1, 1, 1, 2)), tf.ones((1, 1, 1, 2)), tf.ones((1, 1, 1, 2))
        try:
            tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=[1, 1, 1, 1],
                padding="VALID").numpy()
            tf.raw_ops.Conv2DBackpropFilter(
                input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=[1, 1, 1, 1],
                padding="VALID").numpy()
        except (tf.errors.OpError, ValueError) as error:
            message = getattr(error, "message", None) or str(error)
            message = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:.*$", "", message.strip().splitlines()[0])
            return f"{type(error).__name__}: {message}"
    return None


def resolve_implementation(implementation):
    """Map ``"auto"`` to the measured-fastest form that works on the visible device.

    CPU: ``"loop"``, on every CPU. In the stacked ResNet it runs as per-task streams (see
    ``fermtl_tf.methods.hu2018.stacked_resnet``) and was measured faster than ``"grouped"`` even
    where grouped convolutions can be differentiated (oneDNN, AVX-512), and it is the only
    form where they cannot (``grouped_gradient_problem``): 2-task ResNet-34 step / two
    single-task steps, process CPU time, 2 shared Xeon cores, TF 2.21, oneDNN: 1.07 (loop)
    vs 1.17 (grouped) at batch 8 per task, width 32; 1.07 vs 1.14 at batch 16, width 64
    (``benchmarks/stacked_vs_separate_step.py``). GPU (not measured in this project):
    ``"grouped"``, one cuDNN grouped convolution instead of T small launches; pass
    ``implementation="loop"`` explicitly if a GPU measurement says otherwise.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}; got {implementation!r}")
    if implementation != "auto":
        return implementation
    return "grouped" if tf.config.list_physical_devices("GPU") else "loop"


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value}.")
    return value


@keras.saving.register_keras_serializable(package="fermtl_tf")
class StackedConv2D(keras.layers.Layer):
    """T independent ``Conv2D`` layers whose kernels are stacked on a trailing task axis.

    Inputs and outputs carry a leading task axis: ``(T, B, H, W, C_in) -> (T, B, H', W',
    filters)``; slice ``t`` of the kernel ``(kh, kw, C_in, filters, T)`` convolves task ``t``'s
    input, and the bias is ``(filters, T)``. Channels-last only. Each task slice is initialised
    exactly like a standard ``Conv2D`` kernel (fan-in ``kh*kw*C_in`` of one task, not ``T``
    times it; distinct random draws per task), so ``T`` tasks start as ``T`` independent nets.
    ``kernel_regularizer`` sees the whole 5-D kernel, which is where
    ``TensorTraceNorm`` attaches (Hu et al. 2018, §2.2).

    The input may also be a list of T per-task tensors ``(B, H, W, C_in)``; the output is
    then a list too (per-task streams: T plain convolutions, nothing stacked; this is how the
    stacked ResNet runs with ``"loop"``, so that only the kernel is stacked).

    ``implementation`` (for a stacked input):
      * ``"loop"``: ``tf.unstack`` on the task axis, one ``tf.nn.convolution`` per task,
        ``tf.stack``.
      * ``"grouped"``: tasks folded into channels, one grouped convolution (``groups=T``).
        Its gradient needs oneDNN on a CPU (``grouped_gradient_problem`` says why not).
      * ``"auto"`` (default): ``"loop"`` on every CPU, ``"grouped"`` on a GPU (see
        ``resolve_implementation`` for the measurement behind it).
    The earlier layer-level figures that favoured ``"grouped"`` (0.013 s vs 0.033 s at
    24 px) measured a loop that indexed the stacked input T times; that form's gradient was
    the cost, not the T convolutions. (The issue's "grouped is 11x slower" figure comes from
    ``keras.layers.Conv2D(groups=T)``, which Keras routes through an XLA fallback on CPU;
    this layer calls ``tf.nn.convolution`` directly.) The GPU choice was *not* measured (no
    GPU was available); it follows the expectation that one cuDNN grouped call beats T
    launches.

    Args:
        filters: output channels per task.
        kernel_size: int or (kh, kw).
        num_tasks: T, size of the leading input axis and the trailing kernel axis.
        strides, padding ("valid" | "same"), dilation_rate: as ``keras.layers.Conv2D``
            (strides > 1 together with dilation > 1 is rejected, as in Keras).
        activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, kernel_constraint, bias_constraint: as ``keras.layers.Conv2D``.
        implementation: "auto" | "loop" | "grouped" (numerically the same function).

    Example:
        >>> layer = StackedConv2D(8, 3, num_tasks=2, padding="same")
        >>> layer(tf.zeros((2, 4, 16, 16, 3))).shape
        TensorShape([2, 4, 16, 16, 8])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        num_tasks,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_tasks) < 1 or int(filters) < 1:
            raise ValueError(f"filters and num_tasks must be >= 1; got {filters}, {num_tasks}.")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.num_tasks = int(num_tasks)
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"strides={self.strides} > 1 cannot be combined with "
                f"dilation_rate={self.dilation_rate} > 1 (as in keras.layers.Conv2D)."
            )
        self.padding = str(padding).lower()
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; got {padding!r}.")
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.implementation = implementation
        self._implementation = resolve_implementation(implementation)

    def build(self, input_shape):
        input_shape = check_task_axis(self.__class__.__name__, input_shape, self.num_tasks,
                                      min_rank=5)
        in_channels = int(input_shape[-1])
        add_task_kernel_and_bias(self, (*self.kernel_size, in_channels, self.filters),
                                 self.filters)

    def _conv(self, x, kernel):
        """``tf.nn.convolution``; a 1x1 strided kernel as subsampling + a 1x1 stride-1 conv.

        The two are the same function (a 1x1 window needs no padding, "same" or "valid", so
        output pixel i reads input pixel i * stride). The detour avoids a TF 2.21 oneDNN bug:
        the CPU gradient of a 1x1 stride-2 convolution corrupts the heap at some small odd
        batch sizes (seen in eager mode at batch 1, 3 and 5 on 16x16 inputs, with plain
        ``keras.layers.Conv2D`` too), which the projection shortcuts of the per-task
        streams would otherwise hit.
        """
        strides = self.strides
        if self.kernel_size == (1, 1) and max(strides) > 1:
            x = x[:, :: strides[0], :: strides[1], :]
            strides = (1, 1)
        return tf.nn.convolution(
            x,
            kernel,
            strides=strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

    def _task_kernels(self, kernel):
        """The T task kernels ``(kh, kw, C, F)`` of the stacked ``(kh, kw, C, F, T)`` kernel.

        Task slices interleave in memory (the task axis is last, as the trace norm wants), so
        some copy is unavoidable; this one is a 2-D ``(N, T) -> (T, N)`` transpose, whose
        gradient is one transpose back. Copy cost per step on the 36 kernels of a width-32
        ResNet-34, one thread, forward + gradient (``benchmarks/stacked_kernel_split.py``):
        14 ms with oneDNN / 24 ms without, against 25 / 25 ms for ``tf.unstack(kernel,
        axis=-1)``, 14 / 44 ms for a 5-D transpose and 134 / 137 ms for T strided slices
        (``kernel[..., t]``, whose gradients are zero-filled full-size tensors).
        """
        flat = tf.transpose(tf.reshape(kernel, (-1, self.num_tasks)))
        return [tf.reshape(k, kernel.shape[:-1]) for k in tf.unstack(flat, self.num_tasks)]

    def _task_convolutions(self, inputs, kernel):
        """T task inputs ``(B, H, W, C)`` -> T outputs, task ``t`` convolved with slice ``t``.

        A stacked input is split with one ``tf.unstack`` on the task axis (the leading one, so
        TensorFlow shares its buffer; the gradient is one stack), not indexed T times: the
        gradient of T strided slices is T zero-filled full-size tensors summed, which made the
        stacked ResNet-34 step cost 1.8x the two separate networks.
        """
        kernels = self._task_kernels(kernel)
        return [self._conv(x, k) for x, k in zip(inputs, kernels, strict=True)]

    def _call_grouped(self, inputs, kernel):
        """(T,B,H,W,C) -> (B,H,W,T*C); kernel -> (kh,kw,C,T*F) grouped by task; then back."""
        t, c, f = self.num_tasks, tf.shape(inputs)[-1], self.filters
        x = tf.transpose(inputs, [1, 2, 3, 0, 4])
        shape = tf.shape(x)
        x = tf.reshape(x, tf.concat([shape[:3], [t * c]], axis=0))
        k = tf.transpose(kernel, [0, 1, 2, 4, 3])
        k = tf.reshape(k, (*self.kernel_size, -1, t * f))
        y = self._conv(x, k)
        out_shape = tf.shape(y)
        y = tf.reshape(y, tf.concat([out_shape[:3], [t, f]], axis=0))
        return tf.transpose(y, [3, 0, 1, 2, 4])

    def _call_per_task(self, inputs):
        """A list of T task tensors in, a list of T out: T plain convolutions, nothing stacked."""
        dtype = inputs[0].dtype
        outputs = self._task_convolutions(inputs, tf.cast(self.kernel, dtype))
        if self.use_bias:
            biases = tf.unstack(tf.cast(self.bias, dtype), self.num_tasks, axis=-1)
            outputs = [y + b for y, b in zip(outputs, biases, strict=True)]
        if self.activation is not None:
            outputs = [self.activation(y) for y in outputs]
        return outputs

    def call(self, inputs):
        if is_per_task(inputs):
            return self._call_per_task(list(inputs))
        kernel = tf.cast(self.kernel, inputs.dtype)
        if self._implementation == "grouped":
            outputs = self._call_grouped(inputs, kernel)
        else:
            outputs = tf.stack(self._task_convolutions(tf.unstack(inputs, self.num_tasks),
                                                       kernel))
        if self.use_bias:
            bias = tf.transpose(tf.cast(self.bias, outputs.dtype))
            outputs = outputs + bias[:, None, None, None, :]
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        if is_per_task(input_shape):
            return [self.compute_output_shape((self.num_tasks, *shape))[1:]
                    for shape in input_shape]
        spatial = []
        for size, k, s, d in zip(
            input_shape[2:4], self.kernel_size, self.strides, self.dilation_rate, strict=True
        ):
            if size is None:
                spatial.append(None)
            elif self.padding == "same":
                spatial.append(-(-size // s))
            else:
                spatial.append(-(-(size - (k - 1) * d) // s))
        return (input_shape[0], input_shape[1], *spatial, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            num_tasks=self.num_tasks,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
            implementation=self.implementation,
        )
        return config
