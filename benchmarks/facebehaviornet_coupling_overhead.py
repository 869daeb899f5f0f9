"""Training-step time of FaceBehaviorNet with soft co-annotation + distribution matching
over the step time without coupling (target <= 1.05). Prints one JSON object.

    python benchmarks/facebehaviornet_coupling_overhead.py [--width 16 --batch 16 --steps 20]

Random 3-source batches (VA, AU, EXPR sets of §4.4) at 112x112; the steps are
``tf.function(model.train_step)``; medians over ``--steps`` after warm-up,
the two models measured alternately to share the machine's load.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from fermtl_tf.models.facebehaviornet import FaceBehaviorNet  # noqa: E402


def batches(size, batch, seed=0):
    rng = np.random.default_rng(seed)

    def source(kind):
        n = batch
        b = {"image": rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
             "expression": rng.integers(0, 7, n).astype("int32"),
             "expression_mask": np.full(n, kind == "expr", "float32"),
             "au": rng.integers(0, 2, (n, 17)).astype("float32"),
             "au_mask": np.full((n, 17), kind == "au", "float32"),
             "valence": rng.uniform(-1, 1, n).astype("float32"),
             "arousal": rng.uniform(-1, 1, n).astype("float32"),
             "va_mask": np.full(n, kind == "va", "float32")}
        return {k: tf.constant(v) for k, v in b.items()}

    return {kind: source(kind) for kind in ("va", "au", "expr")}


def step_function(coupling, width, size):
    keras.utils.set_random_seed(0)
    model = FaceBehaviorNet({"expression": 7, "au": 17, "va": 2}, width=width, input_size=size,
                            coupling={"name": coupling})
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
    return tf.function(model.train_step)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    data = batches(args.size, args.batch)
    functions = {c: step_function(c, args.width, args.size) for c in ("none", "sca_dm")}
    times = {c: [] for c in functions}
    for step in range(args.steps + 3):
        for coupling, function in functions.items():
            start = time.perf_counter()
            logs = function(data)
            float(logs["loss"])  # wait for the step
            if step >= 3:
                times[coupling].append(time.perf_counter() - start)
    none, both = (float(np.median(times[c])) for c in ("none", "sca_dm"))
    print(json.dumps({"benchmark": "facebehaviornet_coupling_overhead", "width": args.width,
                      "input": args.size, "batch_per_set": args.batch, "steps": args.steps,
                      "step_s_no_coupling": round(none, 5), "step_s_sca_dm": round(both, 5),
                      "ratio": round(both / none, 4), "target": 1.05,
                      "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}))


if __name__ == "__main__":
    main()
