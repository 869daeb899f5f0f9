"""Training-step overhead of the tensor trace-norm regulariser (Hu et al. 2018, §2.2, §2.4).

Network: two tasks stacked with ``StackedConv2D`` in the ResNet-34 convolution plan (33 convs,
all 3x3 here: 64x7, 128x8, 256x12, 512x6; stride 2 at the first conv of each stage and a 2x2
max-pool after the first, so a 96x96 input gives 48 -> 24/12/6/3 px as in ResNet-34), ReLU,
global average pooling and a ``StackedDense`` 13-way head; no shortcuts or batch norm (the
overhead question only needs the 33 kernels). A step = forward, softmax cross-entropy (+ the
regulariser on all 33 kernels), backward and an SGD update, compiled with ``tf.function``.

Configurations: no regulariser; LAF / Tucker / TT with exact SVD (``exact_eigh``: the exact
path with ``eigh`` on every Gram matrix, as before the eigenvector-free route), with
``randomized`` (the certified estimate: sketched where within ``--tolerance`` of the trace
norm, else exact) and with ``randomized_fixed`` (the top-``rank`` estimate); ``--methods`` /
``--svd`` select. The
steps are timed round-robin (one step of each configuration per round) so that background
load on a shared machine affects all of them alike; medians are reported, the ratio
``step / step_without`` of the medians, and each round's own ratio (``round_ratios``: the
spread to quote beside the median). Targets (issue 9b): <= 1.10 for LAF, <= 1.25 for Tucker
and TT with randomized SVD. Also reported: the regulariser alone (value + gradient for the 33
kernels), and per method the ``flop_floor_ratio``: 1 + the FLOPs every Gram-route computation
of the regulariser needs (per unfolding A, m x n with k = min(m, n): the Gram matrix and the
gradient product A P, 2 max(m, n) k^2 each) over the FLOPs of the step without it (its
convolutions and matmuls, counted on the traced graph by ``step_cost.step_flops``). It is the
ratio the step would have if the regulariser did nothing else and ran at the convolutions'
FLOP rate: what is left of the target above it is what Lanczos, the certificate, the
Newton-Schulz products and the small unfoldings may cost. Printed for ``--kernels init`` only
(flat spectra take the Gram route; compressed kernels are sketched, which needs no Gram matrix).

Kernels (``--kernels``): ``init`` (Keras' initialiser: flat spectra, where the certified
``randomized`` mode must fall back to exact), or ``lowrank_noise<s>``, a *synthetic* stand-in
for kernels the trace norm has compressed: each kernel replaced by
``trace_norm_accuracy.low_rank_noise`` (Tucker core rank ``--core-rank`` per mode + Gaussian
noise of relative Frobenius norm s) scaled to the initial kernel's Frobenius norm; the
optimiser's learning rate is then 0 (the update is still computed and applied) so that the
kernels keep that spectrum for every timed step.

    .venv/bin/python benchmarks/trace_norm_overhead.py [--batch 16] [--rounds 5] [--rank 32]
        [--methods laf,tucker,tt] [--svd exact,exact_eigh,randomized,randomized_fixed]
        [--kernels init|lowrank_noise0.001] [--core-rank 8]

Prints one JSON object.
"""

import argparse
import contextlib
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from trace_norm_accuracy import low_rank_noise  # noqa: E402  (sibling script)

from fermtl_tf.layers import StackedConv2D, StackedDense  # noqa: E402
from fermtl_tf.regularizers import TensorTraceNorm, trace_norm  # noqa: E402
from fermtl_tf.training.step_cost import step_flops  # noqa: E402

TASKS = 2
PLAN = [(64, 7), (128, 8), (256, 12), (512, 6)]


def build_network(regularizer, implementation):
    """The 33 stacked convs and the head; returns (convs, head)."""
    convs = []
    for stage, (filters, count) in enumerate(PLAN):
        for i in range(count):
            stride = 2 if i == 0 else 1
            convs.append(StackedConv2D(filters, 3, TASKS, strides=stride, padding="same",
                                       activation="relu", use_bias=False,
                                       kernel_regularizer=regularizer,
                                       implementation=implementation,
                                       name=f"conv{stage}_{i}"))
    return convs, StackedDense(13, TASKS, name="head")


def forward(convs, head, images):
    x = convs[0](images)
    t, b, h, w, c = x.shape
    x = tf.reshape(tf.nn.max_pool2d(tf.reshape(x, (t * b, h, w, c)), 2, 2, "VALID"),
                   (t, b, h // 2, w // 2, c))
    for conv in convs[1:]:
        x = conv(x)
    return head(tf.reduce_mean(x, axis=[2, 3]))


def decay_kernels(convs, kernels, core_rank):
    """Replace every kernel by a low-rank + noise tensor of the same Frobenius norm (module
    docstring); ``kernels="init"`` leaves them as initialised."""
    if kernels == "init":
        return
    if not kernels.startswith("lowrank_noise"):
        raise SystemExit(f"--kernels: init or lowrank_noise<relative noise>; got {kernels!r}")
    noise = float(kernels[len("lowrank_noise"):])
    rng = np.random.default_rng(0)
    for conv in convs:
        initial = conv.kernel.numpy()
        decayed = low_rank_noise(initial.shape, core_rank, noise, rng)
        conv.kernel.assign((decayed * np.linalg.norm(initial) / np.linalg.norm(decayed))
                           .astype(initial.dtype))


def gram_route_flops(kernel_shapes, method):
    """Gram matrix + gradient product FLOPs of ``method``'s unfoldings of every kernel."""
    total = 0
    for shape in kernel_shapes:
        for a in trace_norm.unfoldings(tf.zeros(shape), method):
            m, n = a.shape
            total += 2 * (2 * max(m, n) * min(m, n) ** 2)
    return total


@contextlib.contextmanager
def eigh_only(active):
    """While tracing ``svd="exact_eigh"``: the exact path as it was before the eigenvector-free
    route, ``eigh`` on every Gram matrix (``trace_norm.POLAR_MIN_SIZE`` raised)."""
    saved = trace_norm.POLAR_MIN_SIZE
    trace_norm.POLAR_MIN_SIZE = 2 ** 62 if active else saved
    try:
        yield
    finally:
        trace_norm.POLAR_MIN_SIZE = saved


def make_step(regularizer, images, labels, implementation, kernels="init", core_rank=8):
    keras.utils.set_random_seed(0)
    convs, head = build_network(regularizer, implementation)
    forward(convs, head, images)
    decay_kernels(convs, kernels, core_rank)
    variables = [v for layer in [*convs, head] for v in layer.trainable_variables]
    optimizer = keras.optimizers.SGD(0.01 if kernels == "init" else 0.0)
    optimizer.build(variables)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = forward(convs, head, images)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
            if regularizer is not None:
                loss += tf.add_n([tf.add_n(layer.losses) for layer in convs])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    @tf.function
    def regularizer_only():
        kernels = [conv.kernel for conv in convs]
        with tf.GradientTape() as tape:
            value = tf.add_n([regularizer(k) for k in kernels])
        # One scalar per gradient: every gradient is computed, but nothing large is fetched
        # (fetching the 33 gradients, ~180 MB, made this timing erratic).
        return [value] + [tf.reduce_sum(g) for g in tape.gradient(value, kernels)]

    kernel_shapes = [tuple(conv.kernel.shape) for conv in convs]
    return step, (regularizer_only if regularizer is not None else None), kernel_shapes


def timed(fn):
    start = time.perf_counter()
    result = fn()
    [tf.convert_to_tensor(r).numpy() for r in tf.nest.flatten(result)]
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="images per task")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rank", type=int, default=None, help="randomized SVD rank")
    parser.add_argument("--implementation", default="auto")
    parser.add_argument("--methods", default="laf,tucker,tt")
    parser.add_argument("--svd", default="exact,randomized,randomized_fixed")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--kernels", default="init", help="init or lowrank_noise<s>")
    parser.add_argument("--core-rank", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((TASKS, args.batch, 96, 96, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, 13, (TASKS, args.batch)), tf.int32)
    configs = {"none": None}
    methods, svd_modes = args.methods.split(","), args.svd.split(",")
    for method in methods:
        for svd in svd_modes:
            configs[f"{method}_{svd}"] = TensorTraceNorm(
                method, 1e-4, svd="exact" if svd == "exact_eigh" else svd, rank=args.rank,
                tolerance=args.tolerance)
    steps, reg_only = {}, {}
    for name, regularizer in configs.items():
        with eigh_only(name.endswith("_exact_eigh")):
            steps[name], reg_only[name], kernel_shapes = make_step(
                regularizer, images, labels, args.implementation, args.kernels, args.core_rank)
            timed(steps[name])  # trace + compile
            timed(steps[name])
            if reg_only[name] is not None:
                timed(reg_only[name])
    step_times = {name: [] for name in configs}
    reg_times = {name: [] for name in configs if reg_only[name] is not None}
    for _ in range(args.rounds):
        for name in configs:
            step_times[name].append(timed(steps[name]))
        for name in reg_times:
            reg_times[name].append(timed(reg_only[name]))
    base = float(np.median(step_times["none"]))
    report = {}
    for name in configs:
        median = float(np.median(step_times[name]))
        paired = np.array(step_times[name]) / np.array(step_times["none"])
        report[name] = {"step_s": round(median, 4), "ratio": round(median / base, 3),
                        "round_ratios": [round(float(r), 3) for r in paired]}
        if name in reg_times:
            report[name]["regularizer_only_s"] = round(float(np.median(reg_times[name])), 4)
    targets = {"laf": 1.10, "tucker": 1.25, "tt": 1.25}
    step_gflop = sum(step_flops(steps["none"].get_concrete_function().graph).values()) / 1e9
    floors = {m: round(1.0 + gram_route_flops(kernel_shapes, m) / 1e9 / step_gflop, 3)
              for m in methods}
    print(json.dumps({
        "benchmark": "trace_norm_overhead",
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "tensorflow": tf.__version__, "tasks": TASKS, "batch_per_task": args.batch,
        "input": [96, 96, 3], "convs": sum(c for _, c in PLAN), "rounds": args.rounds,
        "randomized": {"rank": args.rank or "default", "oversampling": 10,
                       "power_iterations": 2, "tolerance": args.tolerance},
        "implementation": args.implementation,
        "kernels": args.kernels, "core_rank": args.core_rank if args.kernels != "init" else None,
        "results": report,
        "step_without_gflop": round(step_gflop, 1),
        "flop_floor_ratio": floors if args.kernels == "init" else None,
        "targets": {
            f"{m}_{svd}": {"target": targets[m], "ratio": report[f"{m}_{svd}"]["ratio"],
                           "met": report[f"{m}_{svd}"]["ratio"] <= targets[m]}
            for m in methods for svd in svd_modes if not svd.startswith("exact")},
    }, indent=1))


if __name__ == "__main__":
    main()
