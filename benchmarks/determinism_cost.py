"""The cost of ``deterministic: true``: training time per epoch with and without it.

``deterministic: true`` orders the input pipelines (parallel map and interleave keep their
order) and enables TensorFlow's op determinism for the run. This script trains the demo's
expression baseline (narrow ResNet-18, 96x96, batch 32, flip/rotation/scale/shift
augmentation; ``fermtl_tf/configs/demo/expression.yaml``) with ``run_experiment`` on a
temporary folder of random-noise records, each setting in its own process (alternating
off/on, ``--rounds`` times each, so that load changes on a shared machine hit both), and
reports the median time of the epochs after the first (compilation) in each setting and
their ratio on / off. That the switch makes reruns identical is tested elsewhere
(tests/test_resume.py, the demo); this measures only its price.

    .venv/bin/python benchmarks/determinism_cost.py [--records 256] [--epochs 3] [--rounds 2]

Prints one JSON object.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402


def demo_config(folder, output, epochs, deterministic):
    text = resources.files("fermtl_tf.configs").joinpath("demo", "expression.yaml").read_text()
    raw = yaml.safe_load(text)
    raw["data"]["train"][0]["folder"] = folder
    raw["data"]["validation"] = []
    raw["output_dir"] = output
    raw["epochs"] = epochs
    raw["deterministic"] = deterministic
    raw["tasks"]["expression"]["num_classes"] = 7
    return raw


def child(folder, output, epochs, deterministic):
    """Train once; print the seconds of every epoch as JSON."""
    import keras

    from fermtl_tf.experiments.experiment import run_experiment

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    run_experiment(demo_config(folder, output, epochs, deterministic), verbose=0,
                   callbacks=[timer], restart=True)
    print(json.dumps(timer.seconds))


def measure(folder, tmp, epochs, deterministic):
    """Epoch seconds of one training process."""
    command = [sys.executable, __file__, "--child", folder, "--epochs", str(epochs)]
    if deterministic:
        command.append("--deterministic")
    command += ["--output", os.path.join(tmp, f"run_{int(deterministic)}")]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.output, args.epochs, args.deterministic)

    from pipeline_throughput import write_synthetic_folder  # this folder's script

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "data")
        os.makedirs(folder)
        write_synthetic_folder(folder, args.records)
        epochs = {False: [], True: []}
        for _ in range(args.rounds):
            for deterministic in (False, True):
                epochs[deterministic] += measure(folder, tmp, args.epochs, deterministic)[1:]
    off, on = statistics.median(epochs[False]), statistics.median(epochs[True])
    print(json.dumps({
        "benchmark": "determinism_cost", "model": "demo expression ResNet-18 w16, 96x96",
        "records": args.records, "batch_size": 32, "timed_epochs_per_setting":
            len(epochs[False]), "epoch_seconds_off": round(off, 3),
        "epoch_seconds_on": round(on, 3), "ratio_on_over_off": round(on / off, 3),
        "epoch_seconds_all": {"off": [round(s, 3) for s in epochs[False]],
                              "on": [round(s, 3) for s in epochs[True]]},
        "cpus": os.cpu_count(), "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
