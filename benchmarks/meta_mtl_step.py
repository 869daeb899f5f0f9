"""One MML iteration (three phases, Li et al. 2023 §4.2) vs one traditional-MTL step.

Same base net (ResNet-34, ``--size`` x ``--size`` RGB, 14 classes, 18 AUs), same train
batch of ``--batch`` images (MML also reads a meta batch of the same size). "mtl" = the
plain step of ``L_emo + rho L_AU`` (Eq. 3); "mml" = meta-train look-ahead, second-order
meta-test, base-learning; "mml_first_order" and "mml_classifiers" are the departures
``first_order: true`` and ``lookahead: classifiers`` (docs/FIDELITY.md). Target: mml / mtl
<= 3.0 on CPU at 112x112. Prints one JSON object.

Each mode runs in its own process (TF 2.21's oneDNN crashes when two differently compiled
steps alternate in one process), so that its peak memory is its own: peak RSS on CPU, the
allocator's peak on a GPU. The modes alternate over ``--rounds`` rounds (mtl, mml, ...,
mtl, mml, ...) so that load from other processes falls on all of them alike. Per round:
wall ratio of the fastest of ``--steps`` compiled steps (the least disturbed on a shared
CPU) and the ratio of the median process CPU seconds (steadier under load, though it counts
the threads' spin-waits); reported as the median over rounds and the range, with the load
average before and after.

Two profiles of where the work goes, by part of the step (op names: the MML forwards run
under the name scopes ``meta_train`` / ``meta_test``, gradient ops are named
``gradient_tape/<forward op>``, a second-order op ``gradient_tape/gradient_tape/...``):

* ``gflops``: convolution and matmul FLOPs of the ops the compiled step actually runs
  (:func:`fermtl_tf.training.step_cost.step_flops`), from the shapes: no timing, so it
  does not depend on the load;
* ``--profile``: seconds per part and per op type of one step under the TensorFlow profiler
  (op durations summed over threads; one step, last round only).

    python benchmarks/meta_mtl_step.py --batch 16 --size 112 --steps 3 --rounds 3
"""

import argparse
import collections
import glob
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("mtl", "mml", "mml_first_order", "mml_classifiers")
AU_NAMES = [f"AU{n}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 16, 17, 20, 23, 24, 25, 26, 27)]

#: (op-name prefix, part of the step), first match wins; see the module docstring.
PARTS = (
    ("gradient_tape/gradient_tape/", "meta_test_second_order"),
    ("gradient_tape/meta_test/", "meta_test_backward"),
    ("meta_test/", "meta_test_forward"),
    ("gradient_tape/meta_train/", "train_backward_lookahead_and_base"),
    ("meta_train/", "train_forward"),
    ("gradient_tape/", "other_backward"),
)


def part_of(op_name):
    """The part of the step an op belongs to (``"other"``: forward of the plain step,
    losses, look-ahead arithmetic, optimiser updates, metrics; ``"other_backward"``: the
    plain step's backward, the meta-test backward through the look-ahead arithmetic)."""
    for prefix, part in PARTS:
        if op_name.startswith(prefix):
            return part
    return "other"


def profile_by_part(step):
    """Seconds per part and per op type of one call of ``step`` under the profiler."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with tempfile.TemporaryDirectory(prefix="meta_mtl_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        step()
        tf.profiler.experimental.stop()
        with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as file:
            space.ParseFromString(file.read())
    parts, types_ = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue  # Python and thread-pool lines: no op events
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                op_name, _, op_type = name.rpartition(":")
                if not op_name or "::" in name:
                    continue  # executor events, not ops ("op_name:OpType")
                seconds = event.duration_ps / 1e12
                parts[part_of(op_name)] += seconds
                types_[op_type.replace("_MklNative", "")] += seconds
    return {"seconds_by_part": {k: round(v, 3) for k, v in parts.most_common()},
            "seconds_by_op_type": {k: round(v, 3) for k, v in types_.most_common(8)}}


def measure(mode, args):
    """Step times (wall and process CPU), peak memory and FLOPs of one ``mode``."""
    import numpy as np
    import tensorflow as tf

    from fermtl_tf.knowledge.vocabularies import RAFCE14
    from fermtl_tf.methods.meta_mtl.build import build_model
    from fermtl_tf.methods.meta_mtl.config import MetaMTLConfig
    from fermtl_tf.training.step_cost import step_flops

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    def batch(seed):
        rng = np.random.default_rng(seed)
        size, n = args.size, args.batch
        return {"image": tf.constant(rng.uniform(-1, 1, (n, size, size, 3)), tf.float32),
                "expression": tf.constant(rng.integers(0, 14, n), tf.int32),
                "expression_mask": tf.ones((n,)),
                "au": tf.constant(rng.integers(0, 2, (n, len(AU_NAMES))), tf.float32),
                "au_mask": tf.ones((n, len(AU_NAMES)))}

    method = MetaMTLConfig(variant="mtl" if mode == "mtl" else "mml",
                           first_order=mode == "mml_first_order",
                           lookahead="classifiers" if mode == "mml_classifiers" else "base_net")
    config = types.SimpleNamespace(
        method=method, optimizer=types.SimpleNamespace(learning_rate=0.01),
        backbone=types.SimpleNamespace(depth=34, width=64, stem="imagenet"))
    data = types.SimpleNamespace(image_size=(args.size, args.size),
                                 expression_vocabulary=list(RAFCE14), au_names=AU_NAMES)
    model = build_model(config, data)
    model.compile()
    step_input = {"train": batch(0), "meta": batch(1)}
    compiled = tf.function(lambda: model.train_step(step_input))

    def step():
        compiled()["loss"].numpy()

    gpu = bool(tf.config.list_physical_devices("GPU"))
    for _ in range(args.warmup):
        step()
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    wall, cpu = [], []
    for _ in range(args.steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    if gpu:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {"wall_s": wall, "cpu_s": cpu, "peak_bytes": int(peak),
              "peak_kind": "gpu_allocator" if gpu else "process_rss",
              "gflops": {part: round(value / 1e9, 2) for part, value in step_flops(
                  compiled.get_concrete_function().graph, lambda op: part_of(op.name)).items()}}
    if args.profile:
        result["profile"] = profile_by_part(step)
    return result


def summary(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def child(mode, args, profile):
    """Run ``measure(mode)`` in a fresh process; its JSON result."""
    command = [sys.executable, __file__, "--only", mode, "--batch", str(args.batch),
               "--size", str(args.size), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--threads", str(args.threads)]
    run = subprocess.run(command + (["--profile"] if profile else []),
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0,
                        help="intra- and inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one step of each mode in the last round")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--only", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(measure(args.only, args)))
        return
    modes = args.modes.split(",")
    load_before = os.getloadavg()
    runs = {mode: [] for mode in modes}
    for index in range(args.rounds):
        for mode in modes:
            runs[mode].append(child(mode, args, args.profile and index == args.rounds - 1))
    report = {"batch": args.batch, "size": args.size, "steps": args.steps,
              "rounds": args.rounds, "threads": args.threads or "default",
              "machine": platform.processor() or platform.machine(),
              "load_average_1_5_15_before": [round(x, 2) for x in load_before],
              "load_average_1_5_15_after": [round(x, 2) for x in os.getloadavg()]}
    for mode, results in runs.items():
        last = results[-1]
        report[mode] = {
            "fastest_wall_s": summary([min(r["wall_s"]) for r in results]),
            "median_cpu_s": summary([statistics.median(r["cpu_s"]) for r in results]),
            "peak_bytes": max(r["peak_bytes"] for r in results), "peak_kind": last["peak_kind"],
            "gflops": last["gflops"], "gflops_total": round(sum(last["gflops"].values()), 2),
            **({"profile": last["profile"]} if "profile" in last else {})}
    if "mtl" in runs:
        for mode in modes:
            if mode == "mtl":
                continue
            pairs = list(zip(runs[mode], runs["mtl"], strict=True))
            report[f"{mode}_over_mtl"] = {
                "wall": summary([min(a["wall_s"]) / min(b["wall_s"]) for a, b in pairs]),
                "cpu": summary([statistics.median(a["cpu_s"]) / statistics.median(b["cpu_s"])
                                for a, b in pairs]),
                "peak": round(report[mode]["peak_bytes"] / report["mtl"]["peak_bytes"], 3),
                "gflops": round(report[mode]["gflops_total"] / report["mtl"]["gflops_total"], 3)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
