"""Where a training step of ``fersnet_step.py``'s models spends its time: one compiled
step traced with the TensorFlow profiler, its op times summed by model part and by kind.
Prints one JSON object.

    python benchmarks/fersnet_step_profile.py [--variant fersnet|classifier --size 96 --batch 64]

Run it with ``TF_NUM_INTRAOP_THREADS=1`` on a shared machine: the op times then add up
to the step's CPU time. ``parts`` keys are the model part an op belongs to (encoder,
decoder, transformer, discriminator, identity_network, classifier, the optimisers),
prefixed ``fwd``/``bwd`` (ops under ``gradient_tape/``); ``kinds`` splits the same time
into convolutions (forward, input gradient, filter gradient) and everything else by op
type. The encoder's forward and backward cover both passes of the step (on I and, for
the cycle loss, on G(z_t, I)); the discriminator's cover its three calls.

``gmac`` counts the multiply-adds of the convolutions (forward, input and filter
gradients) and matrix products the compiled step runs: the ops of its graph that feed an
output or a stateful op (an optimiser or moving-statistics update), which is what
TensorFlow keeps; a lower bound on the step's work that no scheduling removes.
``--count-only`` prints it without running a step.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fersnet_step import VARIANTS, benchmark_model  # noqa: E402 (benchmarks/, beside this)


def traced_step(model, data, logdir):
    """Warm up, then trace one step into ``logdir``; that step's wall seconds."""
    import tensorflow as tf

    step = tf.function(model.train_step)
    float(step(data)["loss"])
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    float(step(data)["loss"])
    seconds = time.perf_counter() - start
    tf.profiler.experimental.stop()
    return seconds


def _multiply_adds(op):
    """Multiply-adds of one convolution, convolution gradient or matrix product op."""
    import numpy as np

    def dims(tensor):
        return tensor.shape.as_list()

    if op.type == "Conv2D":  # output elements x kh kw C_in
        return np.prod(dims(op.outputs[0])) * np.prod(dims(op.inputs[1])[:3])
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):  # dy elements x kh kw C_in
        kernel = op.inputs[1] if op.type == "Conv2DBackpropInput" else op.outputs[0]
        return np.prod(dims(op.inputs[2])) * np.prod(dims(kernel)[:3])
    if op.type == "MatMul":
        inner = dims(op.inputs[0])[0 if op.get_attr("transpose_a") else 1]
        return np.prod(dims(op.outputs[0])) * inner
    return 0


def step_multiply_adds(model, data):
    """Giga multiply-adds by op type of the ops the compiled step runs (see module doc)."""
    import tensorflow as tf

    graph = tf.function(model.train_step).get_concrete_function(data).graph
    pending = [t.op for t in graph.outputs] + list(graph.control_outputs)
    pending += [op for op in graph.get_operations() if op._is_stateful]
    kept = set()
    while pending:
        op = pending.pop()
        if op not in kept:
            kept.add(op)
            pending += [t.op for t in op.inputs] + list(op.control_inputs)
    counts = collections.Counter()
    for op in kept:
        counts[op.type] += _multiply_adds(op) / 1e9
    return {key: round(float(value), 1) for key, value in counts.items() if value}


def op_times(logdir):
    """(op name, op type, seconds) of every TF op event on the host in the trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    with open(path, "rb") as handle:
        space.ParseFromString(handle.read())
    for plane in space.planes:
        if "host" not in plane.name.lower():
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "/" in name:  # op events are "scope/.../op:Type"
                    op_name, op_type = name.rsplit(":", 1)
                    yield op_name, op_type, event.duration_ps / 1e12


def summarise(events):
    """Seconds by model part (fwd/bwd) and by op kind, largest first."""
    parts, kinds = collections.Counter(), collections.Counter()
    for op_name, op_type, seconds in events:
        scopes = op_name.split("/")
        backward = scopes[0] == "gradient_tape"
        part = (scopes[1] if backward else scopes[0]).rsplit("_", 1)
        part = part[0] if part[-1].isdigit() else "_".join(part)
        parts[("bwd " if backward else "fwd ") + part] += seconds
        kinds[op_type.replace("_MklNative", "").replace("_Mkl", "")] += seconds

    def rounded(counter, top):
        return {key: round(value, 3) for key, value in counter.most_common(top)}

    return {"total_op_s": round(sum(kinds.values()), 3), "parts": rounded(parts, 16),
            "kinds": rounded(kinds, 16)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, default="fersnet")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--count-only", action="store_true",
                        help="only count the multiply-adds; run no step")
    args = parser.parse_args(argv)
    model, data = benchmark_model(args.variant, args.size, args.batch)
    gmac = step_multiply_adds(model, data)
    summary = {}
    if not args.count_only:
        with tempfile.TemporaryDirectory() as logdir:
            seconds = traced_step(model, data, logdir)
            summary = {"traced_step_s": round(seconds, 3), **summarise(op_times(logdir))}
    print(json.dumps({"benchmark": "fersnet_step_profile", "variant": args.variant,
                      "input": args.size, "batch": args.batch, "gmac": gmac,
                      "gmac_total": round(sum(gmac.values()), 1), **summary,
                      "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
                      "load_average_1min": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
