"""Training-step time of FaceBehaviorNet with soft co-annotation + distribution matching
over the step time without coupling (target <= 1.05). Prints one JSON object.

    python benchmarks/facebehaviornet_coupling_overhead.py [--width 64 --size 112
        --batch 124 200 52 --rounds 3 --steps 5 --warmup 2]

Random 3-source batches (VA, AU, EXPR sets of §4.4, default the paper's 124 + 200 + 52
images) at 112x112; the step is ``tf.function(model.train_step)``.

Each configuration is timed in its own subprocess (the script re-invokes itself with
``--variant none`` or ``--variant sca_dm``, which prints one JSON line of step times):
two compiled train steps run alternately in one process crash on CPU with glibc heap
corruption ("double free", "free(): invalid next size", TF 2.21 with oneDNN). The
subprocesses alternate over ``--rounds`` rounds so that both see the same machine load;
the reported step time of a configuration is the median over all its timed steps, and
the ratio uses those medians. The per-round ratios and the ratio of the fastest steps
(least disturbed by other processes on a shared machine) are printed too.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _step_timing  # noqa: E402 (benchmarks/, beside this script)

VARIANTS = ("none", "sca_dm")


def batches(size, batch_sizes, seed=0):
    """Random VA / AU / EXPR batches (dict of three batch dicts), 17 AUs, 7 emotions."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)

    def source(kind, n):
        b = {"image": rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
             "expression": rng.integers(0, 7, n).astype("int32"),
             "expression_mask": np.full(n, kind == "expr", "float32"),
             "au": rng.integers(0, 2, (n, 17)).astype("float32"),
             "au_mask": np.full((n, 17), kind == "au", "float32"),
             "valence": rng.uniform(-1, 1, n).astype("float32"),
             "arousal": rng.uniform(-1, 1, n).astype("float32"),
             "va_mask": np.full(n, kind == "va", "float32")}
        return {k: tf.constant(v) for k, v in b.items()}

    return {kind: source(kind, n) for kind, n in zip(("va", "au", "expr"), batch_sizes,
                                                    strict=True)}


def time_variant(args):
    """Child process: build one model, warm up, return its timed step seconds."""
    import keras

    from fermtl_tf.methods.facebehaviornet.model import FaceBehaviorNet

    keras.utils.set_random_seed(0)
    model = FaceBehaviorNet({"expression": 7, "au": 17, "va": 2}, width=args.width,
                            input_size=args.size, coupling={"name": args.variant})
    model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9))
    data = batches(args.size, args.batch)
    return {"variant": args.variant, **_step_timing.time_train_step(model, data, args.warmup,
                                                                     args.steps)}


def run_child(args, variant):
    """This script with ``--variant``; the child's JSON line as a dict."""
    return _step_timing.run_child(os.path.abspath(__file__), variant, [
        "--width", args.width, "--size", args.size, "--batch", *args.batch,
        "--steps", args.steps, "--warmup", args.warmup])


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, nargs=3, default=[124, 200, 52],
                        metavar=("VA", "AU", "EXPR"), help="images per set and step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per subprocess")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per subprocess")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.variant:  # child
        print(json.dumps(time_variant(args)))
        return 0
    times = {variant: [] for variant in VARIANTS}
    round_ratios, device = [], None
    for _ in range(args.rounds):
        medians = {}
        for variant in VARIANTS:
            child = run_child(args, variant)
            times[variant] += child["step_s"]
            medians[variant] = median(child["step_s"])
            device = child["device"]
        round_ratios.append(round(medians["sca_dm"] / medians["none"], 4))
    none, both = median(times["none"]), median(times["sca_dm"])
    print(json.dumps({
        "benchmark": "facebehaviornet_coupling_overhead", "width": args.width,
        "input": args.size, "batch_va_au_expr": args.batch, "rounds": args.rounds,
        "timed_steps_per_round": args.steps, "warmup_steps": args.warmup,
        "step_s_no_coupling": round(none, 5), "step_s_sca_dm": round(both, 5),
        "ratio": round(both / none, 4), "round_ratios": round_ratios, "target": 1.05,
        "min_step_s_no_coupling": round(min(times["none"]), 5),
        "min_step_s_sca_dm": round(min(times["sca_dm"]), 5),
        "ratio_of_minima": round(min(times["sca_dm"]) / min(times["none"]), 4),
        "device": device, "isolation": "one subprocess per configuration and round"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
