"""Shared by the step benchmarks: time a compiled train step, run a variant in a child.

Each variant runs in its own process because TF 2.21's oneDNN crashes when two
differently compiled train steps alternate in one process on CPU.
"""

import json
import subprocess
import sys
import time


def time_train_step(model, data, warmup, steps):
    """Seconds of each of ``steps`` calls of ``model.train_step`` (compiled), after
    ``warmup`` untimed ones; with the device the steps ran on."""
    import tensorflow as tf  # in the child only: the parent never loads TensorFlow

    step = tf.function(model.train_step)
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        float(step(data)["loss"])  # wait for the step
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return {"step_s": times,
            "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU"}


def run_child(script, variant, arguments):
    """Run ``script --variant variant *arguments``; the child's last JSON line as a dict."""
    command = [sys.executable, script, "--variant", variant, *map(str, arguments)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"{script} --variant {variant} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(lines[-1])
