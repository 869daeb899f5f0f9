"""One MML iteration (three phases, Li et al. 2023 §4.2) vs one traditional-MTL step.

Same base net (ResNet-34, ``--size`` x ``--size`` RGB, 14 classes, 18 AUs), same train
batch of ``--batch`` images (MML also reads a meta batch of the same size). "mtl" = the
plain step of ``L_emo + rho L_AU`` (Eq. 3); "mml" = meta-train look-ahead, second-order
meta-test, base-learning (``first_order`` adds the departure's variant). Each mode runs
in its own process so that its peak memory is its own: peak RSS on CPU, the allocator's
peak on a GPU. Median of ``--steps`` compiled steps after warm-up. Target: mml / mtl <= 3.0
on CPU at 112x112. Prints one JSON object.

    python benchmarks/meta_mtl_step.py --batch 16 --size 112 --steps 3
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("mtl", "mml", "mml_first_order")
AU_NAMES = [f"AU{n}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 16, 17, 20, 23, 24, 25, 26, 27)]


def measure(mode, batch_size, size, steps, warmup):
    """Median seconds of one compiled step of ``mode`` and the peak memory in bytes."""
    import numpy as np
    import tensorflow as tf

    from fermtl_tf.knowledge.vocabularies import RAFCE14
    from fermtl_tf.methods.meta_mtl.build import build_model
    from fermtl_tf.methods.meta_mtl.config import MetaMTLConfig

    def batch(seed):
        rng = np.random.default_rng(seed)
        return {"image": tf.constant(rng.uniform(-1, 1, (batch_size, size, size, 3)), tf.float32),
                "expression": tf.constant(rng.integers(0, 14, batch_size), tf.int32),
                "expression_mask": tf.ones((batch_size,)),
                "au": tf.constant(rng.integers(0, 2, (batch_size, len(AU_NAMES))), tf.float32),
                "au_mask": tf.ones((batch_size, len(AU_NAMES)))}

    method = MetaMTLConfig(variant="mtl" if mode == "mtl" else "mml",
                           first_order=mode == "mml_first_order")
    config = types.SimpleNamespace(
        method=method, optimizer=types.SimpleNamespace(learning_rate=0.01),
        backbone=types.SimpleNamespace(depth=34, width=64, stem="imagenet"))
    data = types.SimpleNamespace(image_size=(size, size), expression_vocabulary=list(RAFCE14),
                                 au_names=AU_NAMES)
    model = build_model(config, data)
    model.compile()
    step_input = {"train": batch(0), "meta": batch(1)}
    step = tf.function(lambda: model.train_step(step_input))
    gpu = bool(tf.config.list_physical_devices("GPU"))
    for _ in range(warmup):
        step()["loss"].numpy()
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()["loss"].numpy()
        times.append(time.perf_counter() - start)
    if gpu:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": float(np.median(times)), "peak_bytes": int(peak),
            "peak_kind": "gpu_allocator" if gpu else "process_rss"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--only", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(measure(args.only, args.batch, args.size, args.steps, args.warmup)))
        return
    results = {}
    for mode in args.modes.split(","):
        run = subprocess.run(
            [sys.executable, __file__, "--only", mode, "--batch", str(args.batch),
             "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup)],
            capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"mode {mode} failed:\n{run.stderr[-3000:]}")
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    report = {"batch": args.batch, "size": args.size, "steps": args.steps,
              "machine": platform.processor() or platform.machine(), **results}
    for mode in results:
        if mode != "mtl" and "mtl" in results:
            report[f"{mode}_over_mtl_time"] = results[mode]["seconds"] / results["mtl"]["seconds"]
            report[f"{mode}_over_mtl_peak"] = (results[mode]["peak_bytes"]
                                               / results["mtl"]["peak_bytes"])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
