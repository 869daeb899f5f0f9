"""Training step of the stacked 2-task ResNet-34 vs two single-task ResNet-34 steps.

Same inputs: B expression images and B landmark images. "separate" = one ``BaselineModel``
step per task (expression, landmarks); "stacked" = one ``Hu2018Model`` step on
``{"expression": ..., "landmarks": ...}`` with no trace norm (the same two networks,
stacked), per ``StackedConv2D`` implementation (``auto``, ``loop``, ``grouped``), plus
``auto`` with the LAF trace norm. Every variant is built and warmed up first; then each round
times ``--steps`` calls of every variant's compiled ``train_step``, interleaved step by step
(A B C ... A B C ...) so that load from other processes falls on all variants alike, and
forms the ratio stacked / (separate expression + separate landmarks) from each variant's
fastest step of the round (the step least disturbed by other processes on a shared CPU).
Reported: the median ratio over ``--rounds`` rounds and its range (min, max), the median
over rounds of each variant's fastest step, and the same ratio of process CPU seconds (median
step of each round; less sensitive to other processes, though it counts threads' spin-waits).
Ratios are comparable within one run only.

Where this CPU cannot differentiate a grouped convolution (no oneDNN, e.g. AMD EPYC without
AVX-512 or ``TF_ENABLE_ONEDNN_OPTS=0``), ``grouped`` is reported as
``"unavailable: <TensorFlow's reason>"`` instead of being run.

Target: stacked / separate <= 1.0 for ``auto``. Prints one JSON object.

    python benchmarks/stacked_vs_separate_step.py --batch 8 --width 32 --rounds 5
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

from fermtl_tf.layers.stacked_conv import (  # noqa: E402
    grouped_gradient_problem,
    resolve_implementation,
)
from fermtl_tf.methods.baseline.model import BaselineModel  # noqa: E402
from fermtl_tf.methods.hu2018.model import Hu2018Model  # noqa: E402

NUM_CLASSES = 13
STACKED_VARIANTS = {
    "stacked_auto": {"implementation": "auto"},
    "stacked_loop": {"implementation": "loop"},
    "stacked_grouped": {"implementation": "grouped"},
    "stacked_auto_laf": {"implementation": "auto",
                         "trace_norm": {"method": "laf", "strength": 1e-3}},
}


def batch(n, size, seed):
    rng = np.random.default_rng(seed)
    return {"image": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32),
            "expression": tf.constant(rng.integers(0, NUM_CLASSES, n), tf.int32),
            "expression_mask": tf.ones((n,)),
            "landmarks": tf.constant(rng.uniform(0.2, 0.8, (n, 68, 2)), tf.float32),
            "landmarks_mask": tf.ones((n,))}


def train_step_fn(model, data):
    """One compiled optimiser step of ``model`` (its own ``train_step``) on fixed ``data``."""
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    step = tf.function(lambda: model.train_step(data))
    return lambda: step()["loss"].numpy()


def seconds(step):
    """(wall-clock, process CPU) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - wall, time.process_time() - cpu


def cpu_model():
    """The CPU model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def summary(values):
    return {"median": round(float(np.median(values)), 3), "min": round(float(min(values)), 3),
            "max": round(float(max(values)), 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="images per task")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra- and inter-op threads (0: TensorFlow's default); 1 measures "
                             "the work alone, least disturbed on a shared CPU")
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    expression, landmarks = batch(args.batch, args.size, 1), batch(args.batch, args.size, 2)
    common = dict(depth=34, width=args.width, input_size=args.size, stem="imagenet")

    grouped_problem = grouped_gradient_problem()
    unavailable = {}
    steps = {}
    for task, data in (("expression", expression), ("landmarks", landmarks)):
        model = BaselineModel(task=task, num_classes=NUM_CLASSES, **common)
        steps[f"separate_{task}"] = train_step_fn(model, data)
    sources = {"expression": expression, "landmarks": landmarks}
    for label, options in STACKED_VARIANTS.items():
        if resolve_implementation(options["implementation"]) == "grouped" and grouped_problem:
            unavailable[label] = f"unavailable: {grouped_problem}"
            continue
        model = Hu2018Model(num_classes=NUM_CLASSES, **common, **options)
        steps[label] = train_step_fn(model, sources)
    for step in steps.values():
        for _ in range(args.warmup):
            step()

    per_round = {label: [] for label in steps}
    ratios = {label: [] for label in steps if label.startswith("stacked")}
    cpu_ratios = {label: [] for label in ratios}
    for _ in range(args.rounds):
        times = {label: [] for label in steps}
        for _ in range(args.steps):
            for label, step in steps.items():
                times[label].append(seconds(step))
        fastest = {label: min(wall for wall, _ in values) for label, values in times.items()}
        cpu = {label: float(np.median([c for _, c in values])) for label, values in times.items()}
        for label, value in fastest.items():
            per_round[label].append(value)
        for label in ratios:
            ratios[label].append(
                fastest[label] / (fastest["separate_expression"] + fastest["separate_landmarks"]))
            cpu_ratios[label].append(
                cpu[label] / (cpu["separate_expression"] + cpu["separate_landmarks"]))

    result = {
        "benchmark": "stacked_vs_separate_step",
        "model": f"ResNet-34 width {args.width}, {args.size}x{args.size}, T=2",
        "batch_per_task": args.batch,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "seconds_per_step_fastest_median_over_rounds": {k: round(float(np.median(v)), 4)
                                    for k, v in per_round.items()},
        "ratio_stacked_over_separate": {**{k: summary(v) for k, v in ratios.items()},
                                        **unavailable},
        "cpu_time_ratio_stacked_over_separate": {k: summary(v) for k, v in cpu_ratios.items()},
        "auto_implementation": resolve_implementation("auto"),
        "grouped": f"unavailable: {grouped_problem}" if grouped_problem else "available",
        "target_ratio": 1.0,
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or "default",
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
