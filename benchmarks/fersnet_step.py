"""FERSNet training step (D step + G step) over a single-branch classifier step on the same
batch (target <= 4.0 at 96x96). Prints one JSON object.

    python benchmarks/fersnet_step.py [--size 96 --batch 64 --rounds 2 --steps 5 --warmup 2]

"fersnet" is the paper's model (two branches, eight ConvFLUs, f_tra, f_dec, PatchGAN D,
frozen Light CNN-9 at 128x128 with random weights, cycle pass); "classifier" is the FER
branch alone with f_cls (``sharing="none", synthesis=False``: Table VI's "w/o MTL" at
the same widths). Both steps are ``tf.function(model.train_step)`` on one random batch
with target pairs. Each configuration runs in its own subprocess (two compiled train
steps alternating in one process can crash TF 2.21 oneDNN on CPU), alternating over
``--rounds``; the ratio uses the medians of all timed steps.
"""

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _step_timing  # noqa: E402 (benchmarks/, beside this script)

VARIANTS = ("classifier", "fersnet")


def benchmark_model(variant, size, batch):
    """The compiled model of ``variant`` and one random batch with target pairs."""
    import keras
    import numpy as np
    import tensorflow as tf

    from fermtl_tf.methods.fersnet.model import FERSNetModel

    keras.utils.set_random_seed(0)
    fersnet = variant == "fersnet"
    model = FERSNetModel(num_classes=7, image_size=(size, size),
                         sharing="convflu" if fersnet else "none", synthesis=fersnet,
                         identity_input_size=128 if fersnet else None)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  discriminator_optimizer=keras.optimizers.Adam(1e-3) if fersnet else None)
    rng = np.random.default_rng(0)
    shape = (batch, size, size, 3)
    data = {"image": rng.uniform(-1, 1, shape), "target_image": rng.uniform(-1, 1, shape),
            "expression": rng.integers(0, 7, batch),
            "target_expression": rng.integers(0, 7, batch),
            "expression_mask": np.ones(batch)}
    labels = ("expression", "target_expression")
    return model, {k: tf.constant(v, tf.int32 if k in labels else tf.float32)
                   for k, v in data.items()}


def time_variant(args):
    """Child process: build one model, warm up, return its timed step seconds."""
    model, data = benchmark_model(args.variant, args.size, args.batch)
    return {"variant": args.variant, **_step_timing.time_train_step(model, data, args.warmup,
                                                                     args.steps)}


def run_child(args, variant):
    """This script with ``--variant``; the child's JSON line as a dict."""
    return _step_timing.run_child(os.path.abspath(__file__), variant, [
        "--size", args.size, "--batch", args.batch, "--steps", args.steps,
        "--warmup", args.warmup])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per subprocess")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per subprocess")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(time_variant(args)))
        return 0
    times = {variant: [] for variant in VARIANTS}
    device = None
    for _ in range(args.rounds):
        for variant in VARIANTS:
            child = run_child(args, variant)
            times[variant] += child["step_s"]
            device = child["device"]
    single, joint = (statistics.median(times[v]) for v in VARIANTS)
    print(json.dumps({
        "benchmark": "fersnet_step", "input": args.size, "batch": args.batch,
        "rounds": args.rounds, "timed_steps_per_round": args.steps,
        "warmup_steps": args.warmup, "step_s_classifier": round(single, 5),
        "step_s_fersnet": round(joint, 5), "ratio": round(joint / single, 3),
        "target": 4.0, "ratio_of_minima": round(min(times["fersnet"])
                                                / min(times["classifier"]), 3),
        "device": device}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
