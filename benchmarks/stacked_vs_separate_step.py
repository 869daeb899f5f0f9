"""Training step of the stacked 2-task ResNet-34 vs two single-task ResNet-34 steps.

Same inputs: B expression images and B landmark images (96x96). "separate" = one
``BaselineModel`` step per task (expression, landmarks), timed back to back; "stacked" =
one ``Hu2018Model`` step on ``{"expression": ..., "landmarks": ...}`` with no trace norm
(the same two networks, stacked), per ``StackedConv2D`` implementation, plus the LAF
trace norm variant. Median of ``--steps`` timed calls of the model's compiled ``train_step`` after
warm-up.
Target: stacked / separate <= 1.0. Prints one JSON object.

    python benchmarks/stacked_vs_separate_step.py --batch 16 --width 64 --steps 5
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fermtl_tf.layers.stacked_conv import resolve_implementation  # noqa: E402
from fermtl_tf.methods.baseline.model import BaselineModel  # noqa: E402
from fermtl_tf.methods.hu2018.model import Hu2018Model  # noqa: E402

NUM_CLASSES = 13


def batch(n, size, seed):
    rng = np.random.default_rng(seed)
    return {"image": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32),
            "expression": tf.constant(rng.integers(0, NUM_CLASSES, n), tf.int32),
            "expression_mask": tf.ones((n,)),
            "landmarks": tf.constant(rng.uniform(0.2, 0.8, (n, 68, 2)), tf.float32),
            "landmarks_mask": tf.ones((n,))}


def median_step_seconds(step, warmup, steps):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def train_step_fn(model, data):
    """One compiled optimiser step of ``model`` (its own ``train_step``) on fixed ``data``."""
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    step = tf.function(lambda: model.train_step(data))
    return lambda: step()["loss"].numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="images per task")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    expression, landmarks = batch(args.batch, args.size, 1), batch(args.batch, args.size, 2)
    common = dict(depth=34, width=args.width, input_size=args.size, stem="imagenet")

    times = {}
    for task, data in (("expression", expression), ("landmarks", landmarks)):
        model = BaselineModel(task=task, num_classes=NUM_CLASSES, **common)
        times[f"separate_{task}"] = median_step_seconds(train_step_fn(model, data),
                                                        args.warmup, args.steps)
    times["separate_total"] = times["separate_expression"] + times["separate_landmarks"]
    sources = {"expression": expression, "landmarks": landmarks}
    for label, options in (("stacked_loop", {"implementation": "loop"}),
                           ("stacked_grouped", {"implementation": "grouped"}),
                           ("stacked_auto_laf", {"trace_norm": {"method": "laf",
                                                                "strength": 1e-3}})):
        model = Hu2018Model(num_classes=NUM_CLASSES, **common, **options)
        times[label] = median_step_seconds(train_step_fn(model, sources), args.warmup,
                                           args.steps)
    result = {
        "benchmark": "stacked_vs_separate_step",
        "model": f"ResNet-34 width {args.width}, {args.size}x{args.size}, T=2",
        "batch_per_task": args.batch,
        "steps_timed": args.steps,
        "seconds_per_step": {k: round(v, 4) for k, v in times.items()},
        "ratio_stacked_over_separate": {
            k: round(times[k] / times["separate_total"], 3)
            for k in ("stacked_loop", "stacked_grouped", "stacked_auto_laf")},
        "auto_implementation": resolve_implementation("auto"),
        "target_ratio": 1.0,
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
