"""Forward+backward time of the ways to run T task-specific convolutions (StackedConv2D).

Forms compared on the visible device (CPU here unless a GPU is present):
  * ``streams`` - StackedConv2D on a list of T per-task tensors (what the stacked ResNet runs
                  with "loop"): T plain convolutions, nothing stacked.
  * ``loop``    - StackedConv2D(implementation="loop") on a stacked (T, B, ...) tensor:
                  unstack, one convolution per task, stack.
  * ``grouped`` - StackedConv2D(implementation="grouped"): one grouped convolution, groups=T;
                  reported as "unavailable: <reason>" where this CPU cannot differentiate it.
  * ``patches`` - im2col (tf.image.extract_patches) then one batched matmul over tasks;
                  a candidate "batched" form, measured here only.
Shapes follow the ResNet-34 stages at a 96x96 input (24/12/6/3 px, 64..512 channels, 3x3,
stride 1, "same"), T=2 tasks, batch 16 per task, plus the issue's 32x24x24 64->64 case. Each
timing is the median over ``--repeats`` runs of a compiled (tf.function) step computing the
output, a scalar loss and gradients w.r.t. input and kernel, after two warm-up runs.

    .venv/bin/python benchmarks/stacked_conv_implementations.py [--repeats 7]

Prints one JSON object: per shape, seconds per form and the fastest form.
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
from fermtl_tf.layers.stacked_conv import grouped_gradient_problem  # noqa: E402

# (name, tasks, batch per task, spatial, c_in, c_out)
SHAPES = [
    ("issue_32x24x24_64to64", 2, 32, 24, 64, 64),
    ("stage1_24px_64", 2, 16, 24, 64, 64),
    ("stage2_12px_128", 2, 16, 12, 128, 128),
    ("stage3_6px_256", 2, 16, 6, 256, 256),
    ("stage4_3px_512", 2, 16, 3, 512, 512),
]


def patches_forward(x, kernel):
    """im2col + batched matmul: (T,B,H,W,C) x (3,3,C,F,T) -> (T,B,H,W,F), 'same', stride 1."""
    t, b, h, w, c = x.shape
    kh, kw, _, f, _ = kernel.shape
    flat = tf.reshape(x, (t * b, h, w, c))
    cols = tf.image.extract_patches(
        flat, sizes=[1, kh, kw, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1], padding="SAME"
    )
    cols = tf.reshape(cols, (t, b * h * w, kh * kw * c))
    k = tf.reshape(tf.transpose(kernel, [4, 0, 1, 2, 3]), (t, kh * kw * c, f))
    return tf.reshape(tf.matmul(cols, k), (t, b, h, w, f))


def make_step(forward, x, kernel):
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            outputs = forward(x, kernel)
            outputs = outputs if isinstance(outputs, list) else [outputs]
            loss = tf.add_n([tf.reduce_sum(tf.square(y)) for y in outputs])
        return tf.nest.flatten(tape.gradient(loss, [x, kernel]))

    return step


def median_time(step, repeats):
    for _ in range(2):
        [g.numpy() for g in step()]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        [g.numpy() for g in step()]
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def layer_forward(implementation, c_out, tasks):
    """The forward of one ``StackedConv2D`` form as ``forward(x, kernel) -> (T, B, H, W, F)``."""
    layer = StackedConv2D(c_out, 3, num_tasks=tasks, padding="same", use_bias=False,
                          implementation="loop" if implementation == "streams" else implementation)

    def forward(x, kernel):
        if not layer.built:
            layer.build([s.shape for s in x] if isinstance(x, list) else x.shape)
        if implementation == "grouped":
            return layer._call_grouped(x, kernel)
        if implementation == "streams":  # inputs and outputs stay per task
            return layer._task_convolutions(list(x), kernel)
        return tf.stack(layer._task_convolutions(tf.unstack(x, tasks), kernel))

    return forward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    grouped_problem = grouped_gradient_problem()
    results = {}
    for name, tasks, batch, size, c_in, c_out in SHAPES:
        x = tf.constant(rng.standard_normal((tasks, batch, size, size, c_in)), tf.float32)
        kernel = tf.constant(rng.standard_normal((3, 3, c_in, c_out, tasks)) * 0.05, tf.float32)
        forms = {
            "streams": layer_forward("streams", c_out, tasks),
            "loop": layer_forward("loop", c_out, tasks),
            "grouped": layer_forward("grouped", c_out, tasks),
            "patches": patches_forward,
        }
        streams = [tf.constant(x[t]) for t in range(tasks)]
        reference = forms["loop"](x, kernel)
        row = {}
        for form, forward in forms.items():
            if form == "grouped" and grouped_problem:
                row[form] = f"unavailable: {grouped_problem}"
                continue
            inputs = streams if form == "streams" else x
            np.testing.assert_allclose(np.stack(forward(inputs, kernel)), reference, rtol=1e-3,
                                       atol=1e-3)
            row[form] = round(median_time(make_step(forward, inputs, kernel), args.repeats), 4)
        row["fastest"] = min((form for form in forms if isinstance(row[form], float)),
                             key=row.get)
        results[name] = row
    print(json.dumps({
        "benchmark": "stacked_conv_implementations",
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "grouped": f"unavailable: {grouped_problem}" if grouped_problem else "available",
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "tensorflow": tf.__version__, "repeats": args.repeats,
        "seconds_forward_backward": results,
    }, indent=1))


if __name__ == "__main__":
    main()
