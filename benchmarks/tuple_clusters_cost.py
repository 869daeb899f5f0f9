"""Cost of online positive mining + the (N+M)-tuple clusters loss per iteration (Liu et al. 2017).

Prints one JSON object. For each number of queries X (default 12, 24, 48; M = N = 6 with
the query among the positives, so 12 images per tuple, §5.2), on one random tuple batch:

* ``softmax_step_s``: forward + backward of the 2B network with the softmax on the
  queries (the embedding kept in the graph with weight 0, so both variants run the same
  layers);
* ``full_step_s``: the same with ``+ alpha * metric`` (Algorithm 1 + Eq. 10, adaptive);
* ``loss_only_s``: mining + loss forward + backward on fixed embeddings;
* ``ratio`` = (softmax step + loss only) / softmax step: the cost of the loss and the
  mining relative to the network's forward-backward (target <= 1.10);
* ``ratio_full_over_softmax`` = full / softmax step, measured in separate processes and
  so at the mercy of the machine's load (on a shared CPU it is noisier than the
  difference it measures).

``loss_scaling`` times the loss alone for ``--loss-queries`` (default up to X = 768),
where the fixed per-op overhead no longer hides the growth with X (§3 counts
2(N + M) X distances): ``per_query_s`` should level off to a constant.

    python benchmarks/tuple_clusters_cost.py [--queries 12 24 48 --width 1.0 --steps 3
        --rounds 2 --loss-queries 12 48 192 768]

Each measurement runs in its own subprocess (two compiled steps alternating in one
process crash TF 2.21's oneDNN on CPU), ``--steps`` timed steps after one warm-up step
(``loss_only_s``: 10x as many, it is short); the kinds alternate over ``--rounds`` rounds
so that all see the same machine load. Reported: the median of every timed step, and
the fastest step (``*_min``, least disturbed on a shared machine); ``ratio`` uses the
medians, ``ratio_min`` the fastest steps.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KINDS = ("softmax_step_s", "full_step_s", "loss_only_s")


def child(args):
    """Time one kind for one X; print ``{"seconds": median}``."""
    import numpy as np
    import tensorflow as tf

    from fermtl_tf.methods.tuple_clusters.network import TupleClustersNet

    model = TupleClustersNet(num_classes=7, num_positives=6, num_negatives=6, width=args.width)
    model.build((None, 48, 48, 3))
    size = model.tuple_size * args.child_queries
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.normal(size=(size, 48, 48, 3)).astype("float32")),
             "expression": tf.constant(rng.integers(0, 7, size).astype("int32")),
             "expression_mask": tf.ones([size]),
             "tuple_role": tf.zeros([size], tf.int32)}
    embeddings = tf.constant(rng.normal(size=(args.child_queries, model.tuple_size,
                                              model.options["embedding_dim"])).astype("float32"))

    @tf.function
    def network_step(with_metric):
        with tf.GradientTape() as tape:
            outputs = model(batch["image"], training=True)
            losses, _ = model.compute_losses(batch, outputs)
            if with_metric:
                total = losses["softmax_loss"] + losses["metric_loss"]
            else:
                total = losses["softmax_loss"] + 0.0 * tf.reduce_mean(outputs["embedding"])
        return tape.gradient(total, model.trainable_variables)

    @tf.function
    def loss_step():
        with tf.GradientTape() as tape:
            tape.watch(embeddings)
            loss = tf.reduce_mean(model.metric_loss(embeddings)[0])
        return tape.gradient(loss, [embeddings, *model.adaptive.trainable_variables])

    times = []
    steps = args.steps * (10 if args.child == "loss_only_s" else 1)
    for index in range(steps + 1):
        start = time.perf_counter()
        if args.child == "loss_only_s":
            result = loss_step()
        else:
            result = network_step(args.child == "full_step_s")
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else None, result)
        if index:  # the first step traces and warms up
            times.append(time.perf_counter() - start)
    print(json.dumps({"times": times}))


def run_child(kind, queries, args):
    command = [sys.executable, __file__, "--child", kind, "--child-queries", str(queries),
               "--width", str(args.width), "--steps", str(args.steps)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["times"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[12, 24, 48])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loss-queries", type=int, nargs="*", default=[12, 48, 192, 768])
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--child-queries", type=int)
    args = parser.parse_args()
    if args.child:
        return child(args)
    times = {(queries, kind): [] for queries in args.queries for kind in KINDS}
    for _ in range(args.rounds):
        for queries in args.queries:
            for kind in KINDS:
                times[queries, kind] += run_child(kind, queries, args)
    rows = []
    for queries in args.queries:
        row = {"queries": queries, "images": queries * 12,
               "distances": 2 * (6 + 6) * queries}
        for kind in KINDS:
            row[kind] = statistics.median(times[queries, kind])
            row[f"{kind}_min"] = min(times[queries, kind])
        row["ratio"] = 1 + row["loss_only_s"] / row["softmax_step_s"]
        row["ratio_full_over_softmax"] = row["full_step_s"] / row["softmax_step_s"]
        row["ratio_full_over_softmax_min"] = row["full_step_s_min"] / row["softmax_step_s_min"]
        rows.append(row)
    scaling = []
    for queries in args.loss_queries:
        seconds = statistics.median(run_child("loss_only_s", queries, args))
        scaling.append({"queries": queries, "loss_only_s": seconds,
                        "per_query_s": seconds / queries})
    print(json.dumps({
        "benchmark": "tuple_clusters_cost", "device": "cpu", "width": args.width,
        "steps": args.steps, "rounds": args.rounds, "target_ratio": 1.10, "rows": rows,
        "max_ratio": max(row["ratio"] for row in rows), "loss_scaling": scaling,
    }, indent=2))


if __name__ == "__main__":
    main()
