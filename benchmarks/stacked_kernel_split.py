"""Per-step cost of splitting stacked kernels into their task slices (forward + gradient).

A stacked kernel keeps the task axis last, ``(kh, kw, C, F, T)`` (the trace norm's layout), so
the T task slices interleave in memory and every step must copy each kernel out and its
gradient back. This times that copy alone on the 36 kernels of a ResNet-34 (33 main-path convs
and 3 projection shortcuts, ``--width`` 32 by default, T = 2): a compiled step computing
``sum(slice ** 2)`` over every task slice and its gradient w.r.t. the stacked kernels, for each
way of splitting, against ``plain`` (the same on the unsplit kernels, no copy). Process CPU
seconds, median of ``--repeats``; one thread by default (``--threads 0``: TensorFlow's).

    python benchmarks/stacked_kernel_split.py [--width 32] [--repeats 7]

Forms: ``unstack`` (``tf.unstack(kernel, axis=-1)``), ``transpose_5d`` (task axis moved first,
then unstacked), ``transpose_2d`` (``(N, T) -> (T, N)``, what ``StackedConv2D`` uses), and
``strided_slices`` (``kernel[..., t]`` T times). Prints one JSON object.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fermtl_tf.layers import StackedConv2D  # noqa: E402

TASKS = 2


def resnet34_kernel_shapes(width):
    """(kh, kw, C_in, C_out) of ResNet-34's 33 main-path convolutions and 3 shortcuts."""
    shapes = [(7, 7, 3, width)] + [(3, 3, width, width)] * 6
    for stage, blocks in ((2, 4), (3, 6), (4, 3)):
        c_in, c = width * 2 ** (stage - 2), width * 2 ** (stage - 1)
        shapes += [(3, 3, c_in, c), (1, 1, c_in, c)] + [(3, 3, c, c)] * (2 * blocks - 1)
    return shapes


def transpose_2d(kernel):
    layer = StackedConv2D(1, kernel.shape[:2], TASKS)
    return layer._task_kernels(kernel)


FORMS = {
    "plain": lambda k: [k],
    "unstack": lambda k: tf.unstack(k, TASKS, axis=-1),
    "transpose_5d": lambda k: tf.unstack(tf.transpose(k, [4, 0, 1, 2, 3]), TASKS),
    "transpose_2d": transpose_2d,
    "strided_slices": lambda k: [k[..., t] for t in range(TASKS)],
}


def cpu_seconds(step, repeats):
    [g.numpy() for g in step()]
    times = []
    for _ in range(repeats):
        start = time.process_time()
        [g.numpy() for g in step()]
        times.append(time.process_time() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    rng = np.random.default_rng(0)
    kernels = [tf.Variable(rng.standard_normal((*shape, TASKS)).astype("float32"))
               for shape in resnet34_kernel_shapes(args.width)]
    seconds = {}
    for name, split in FORMS.items():
        @tf.function
        def step(split=split):
            with tf.GradientTape() as tape:
                loss = tf.add_n([tf.reduce_sum(part * part) for kernel in kernels
                                 for part in split(kernel)])
            return tape.gradient(loss, kernels)

        seconds[name] = cpu_seconds(step, args.repeats)
    print(json.dumps({
        "benchmark": "stacked_kernel_split",
        "kernels": len(kernels), "floats": int(sum(np.prod(k.shape) for k in kernels)),
        "threads": args.threads or "default", "repeats": args.repeats,
        "cpu_seconds_per_step": {k: round(v, 4) for k, v in seconds.items()},
        "copy_seconds_over_plain": {k: round(v - seconds["plain"], 4)
                                    for k, v in seconds.items() if k != "plain"},
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "tensorflow": tf.__version__,
    }))


if __name__ == "__main__":
    main()
