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


def traced_step(variant, size, batch, logdir):
    """Warm up, then trace one step into ``logdir``; that step's wall seconds."""
    import tensorflow as tf

    model, data = benchmark_model(variant, size, batch)
    step = tf.function(model.train_step)
    float(step(data)["loss"])
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    float(step(data)["loss"])
    seconds = time.perf_counter() - start
    tf.profiler.experimental.stop()
    return seconds


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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as logdir:
        seconds = traced_step(args.variant, args.size, args.batch, logdir)
        summary = summarise(op_times(logdir))
    print(json.dumps({"benchmark": "fersnet_step_profile", "variant": args.variant,
                      "input": args.size, "batch": args.batch,
                      "traced_step_s": round(seconds, 3), **summary,
                      "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "default"),
                      "load_average_1min": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
