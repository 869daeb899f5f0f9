"""Cost of online positive mining + the (N+M)-tuple clusters loss per iteration (Liu et al. 2017).

Prints one JSON object. For each number of queries X (default 12, 24, 48; M = N = 6 with
the query among the positives, so 12 images per tuple, §5.2), on one random tuple batch:

* ``softmax_step_s``: forward + backward of the 2B network with the softmax on the
  queries (the embedding kept in the graph with weight 0, so both variants run the same
  layers);
* ``full_step_s``: the same with ``+ alpha * metric`` (Algorithm 1 + Eq. 10, adaptive);
* ``ratio`` = full / softmax (target <= 1.10);
* ``loss_only_s``: mining + loss forward + backward on fixed embeddings, and
  ``loss_only_s_per_query``: that divided by X (linear growth: about constant; §3
  counts 2(N + M) X distances).

    python benchmarks/tuple_clusters_cost.py [--queries 12 24 48 --width 1.0 --steps 3]

Each measurement runs in its own subprocess (two compiled steps alternating in one
process crash TF 2.21's oneDNN on CPU); times are medians over ``--steps`` timed steps
after one warm-up step.
"""

import argparse
import json
import os
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
    for index in range(args.steps + 1):
        start = time.perf_counter()
        if args.child == "loss_only_s":
            result = loss_step()
        else:
            result = network_step(args.child == "full_step_s")
        tf.nest.map_structure(lambda t: t.numpy() if t is not None else None, result)
        if index:  # the first step traces and warms up
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": float(np.median(times))}))


def run_child(kind, queries, args):
    command = [sys.executable, __file__, "--child", kind, "--child-queries", str(queries),
               "--width", str(args.width), "--steps", str(args.steps)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[12, 24, 48])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--child-queries", type=int)
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    for queries in args.queries:
        row = {"queries": queries, "images": queries * 12,
               "distances": 2 * (6 + 6) * queries}
        for kind in KINDS:
            row[kind] = run_child(kind, queries, args)
        row["ratio"] = row["full_step_s"] / row["softmax_step_s"]
        row["loss_only_s_per_query"] = row["loss_only_s"] / queries
        rows.append(row)
    print(json.dumps({
        "benchmark": "tuple_clusters_cost", "device": "cpu", "width": args.width,
        "steps": args.steps, "target_ratio": 1.10, "rows": rows,
        "max_ratio": max(row["ratio"] for row in rows),
        "loss_only_growth_12_to_last": rows[-1]["loss_only_s"] / rows[0]["loss_only_s"],
    }, indent=2))


if __name__ == "__main__":
    main()
