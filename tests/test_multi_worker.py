"""Training over several machines with ``MultiWorkerMirroredStrategy`` (issue 13, item 8a).

Two local CPU worker processes, each with its own ``TF_CONFIG``, run ``fermtl-train`` on
a tiny two-source config (``deterministic: true``, synchronised batch norm, SGD with
momentum) and are compared with one process training on the same global batches.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from fermtl_tf.data import schema
from fermtl_tf.experiments.experiment import shard_by_data
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.training.strategy import WorkerRole, worker_role

#: Expression masks of the records, in order: with a global batch of 4 records (2 per
#: worker) the first worker holds 2 labels of a batch and the second 1 or 0, so a
#: per-worker mean would weight the second worker's labels differently from the
#: one-process mean (the losses must use the replica-global denominator).
MASKS = (1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1)


def write_folder(folder, seed):
    """A prepared folder: 12 training records (masks ``MASKS``) and 4 validation ones."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    records = [("train", mask) for mask in MASKS] + [("val", 1)] * 4
    with tf.io.TFRecordWriter(str(folder / "shard-00000-of-00001.tfrecord")) as writer:
        for index, (split, mask) in enumerate(records):
            image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            record = {"image": tf.io.encode_png(image).numpy(), "expression": index % 7,
                      "expression_mask": mask, "split": split,
                      "image_id": f"{folder.name}-{index}"}
            writer.write(schema.encode_example(record, num_aus=0, num_attributes=0))
    manifest = {
        "source": "handmade", "image_size": [16, 16], "landmarks_units": "pixels",
        "vocabularies": {"expression": list(BASIC7)}, "au_names": [], "num_aus": 0,
        "attribute_names": [], "num_attributes": 0, "splits": {"train": 12, "val": 4},
        "shards": [{"path": "shard-00000-of-00001.tfrecord", "num_records": len(records)}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def write_config(tmp_path, strategy, epochs):
    """Two sources (global batches of 4 + 4 records), validation, 3 steps an epoch."""
    config = {
        "output_dir": "unused", "seed": 0, "method": {"name": "baseline"},
        "strategy": strategy, "deterministic": True, "epochs": epochs,
        "data": {"train": [{"folder": str(tmp_path / "faces_a"), "batch_size": 4},
                           {"folder": str(tmp_path / "faces_b"), "batch_size": 4}],
                 "validation": [{"folder": str(tmp_path / "faces_a"), "split": "val",
                                 "batch_size": 2}],
                 "image_size": [16, 16], "shuffle_buffer": 1},
        "backbone": {"depth": 18, "width": 4, "stem": "compact", "sync_batch_norm": True},
        "tasks": {"expression": {}},
        "optimizer": {"name": "momentum", "learning_rate": 0.01, "momentum": 0.9},
    }
    path = tmp_path / f"{strategy}-{epochs}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


#: Every process the test started, ended at teardown if it is still running (a failure).
LAUNCHED = []


@pytest.fixture
def reap():
    yield
    while LAUNCHED:
        process = LAUNCHED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def start(config, output, tf_config=None):
    """A ``fermtl-train`` process on the CPU, one thread per op; its temporary folders
    (a non-chief worker's scratch) in ``scratch`` beside ``output``."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "TMPDIR": str(output.parent / "scratch"),
           "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    command = [sys.executable, "-m", "fermtl_tf.cli.train", str(config), "--output",
               str(output), "--verbose", "0", "--no-export"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    LAUNCHED.append(process)
    return process


def start_workers(config, output):
    """Two workers of one cluster on free local ports; worker 0 is the chief."""
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    return [start(config, output, {"cluster": cluster, "task": {"type": "worker",
                                                               "index": index}})
            for index in range(2)]


def finish(processes, timeout=1200):  # generous: the 2 shared cores may be very busy
    for process in processes:
        out, _ = process.communicate(timeout=timeout)
        assert process.returncode == 0, out[-3000:]


def weights(path):
    import fermtl_tf.methods.baseline.model  # noqa: F401 (registers BaselineModel)

    return [w.numpy() for w in keras.saving.load_model(path).weights]


def history(output):
    with open(output / "history.csv") as handle:
        return list(csv.DictReader(handle))


def initial_weights(config):
    """The seeded initial weights every run starts from (built in this process)."""
    from fermtl_tf.experiments.config import load_config
    from fermtl_tf.experiments.experiment import resolve_config
    from fermtl_tf.methods import get_method

    loaded = load_config(config)
    data = resolve_config(loaded)
    keras.utils.set_random_seed(loaded.seed)
    return [w.numpy() for w in get_method("baseline").resolve("builder")(loaded, data).weights]


@pytest.mark.slow
def test_two_workers_equal_one_process_and_resume_after_a_sigkill(tmp_path, reap):
    write_folder(tmp_path / "faces_a", seed=1)
    write_folder(tmp_path / "faces_b", seed=2)
    one_config = write_config(tmp_path, "auto", epochs=2)
    config = write_config(tmp_path, "multi_worker", epochs=2)
    one, whole, killed = tmp_path / "one", tmp_path / "whole", tmp_path / "killed"
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    runs = [start(one_config, one), *start_workers(config, whole)]
    victims = start_workers(config, killed)
    metadata = killed / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and victims[0].poll() is None:
        if metadata.is_file() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 1:
            break
        time.sleep(0.02)
    assert victims[0].poll() is None, "the chief ended before it could be killed"
    victims[0].send_signal(signal.SIGKILL)  # the chief, after epoch 1 was backed up
    victims[1].send_signal(signal.SIGKILL)  # its peer would wait for it: restart both
    for process in victims:
        process.communicate(timeout=60)
    assert not (killed / "model.keras").exists()
    finish(runs)
    finish(start_workers(config, killed))

    # Two workers x one replica == one process on the global batch, up to float32
    # rounding: the workers' gradient shares are summed by an all-reduce and synchronised
    # batch norm computes its moments from all-reduced sums, another order of operations
    # than one process's. Measured: weights that moved by up to 1.4 differ by at most
    # 1.1e-6 after the 6 steps; the tolerance leaves a margin of about 10.
    start_weights = initial_weights(one_config)
    single, two = weights(one / "model.keras"), weights(whole / "model.keras")
    assert max(np.abs(a - b).max() for a, b in zip(single, start_weights, strict=True)) > 1e-2
    for a, b in zip(two, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(history(whole), history(one), strict=True):
        for key in ("loss", "val_loss", "expression_accuracy"):
            np.testing.assert_allclose(float(a[key]), float(b[key]), rtol=1e-4, err_msg=key)

    # Killed and restarted == uninterrupted: the same collective sums, bit for bit.
    assert history(killed) == history(whole)
    for name in ("model.keras", "checkpoints/best.keras"):
        for a, b in zip(weights(killed / name), weights(whole / name), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    # Only the chief wrote the run folder; worker 1's scratch folder is gone, the one
    # its killed run left included.
    assert {"model.keras", "history.csv", "config.yaml"} <= set(os.listdir(whole))
    assert not (whole / "backup").exists()
    assert [name for name in os.listdir(scratch) if name.startswith("fermtl-worker")] == []


def test_worker_role_follows_the_keras_chief_convention(monkeypatch):
    def role(cluster, kind, index):
        monkeypatch.setenv("TF_CONFIG", json.dumps(
            {"cluster": cluster, "task": {"type": kind, "index": index}}))
        return worker_role("multi_worker")

    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert role(workers, "worker", 0) == WorkerRole(chief=True, index=0, num_workers=3)
    assert role(workers, "worker", 2) == WorkerRole(chief=False, index=2, num_workers=3)
    with_chief = {"chief": ["a:1"], "worker": ["b:1"]}
    assert role(with_chief, "chief", 0).chief
    assert role(with_chief, "worker", 0) == WorkerRole(chief=False, index=0, num_workers=2)
    assert worker_role("auto") == WorkerRole()
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        worker_role("multi_worker")


def test_training_input_is_sharded_by_data_not_by_file():
    dataset = shard_by_data(tf.data.Dataset.range(4))
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)
