"""MultiTaskModel steps against numpy, replica equivalence, strategies, schedules, resume, CLI."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from fermtl_tf.data import schema
from fermtl_tf.experiments.config import ScheduleConfig
from fermtl_tf.experiments.experiment import build_optimizer, make_schedule, train_model
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.training.multitask import MultiTaskModel
from fermtl_tf.training.strategy import make_strategy

FEATURES, CLASSES = 6, 3
WEIGHTS = {"expression": 1.0, "landmarks": 2.0}


def linear_two_task(l2=0.0):
    """expression_logits = x W_e + b_e; landmarks = reshape(x W_l + b_l): numpy-checkable."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    x = keras.Input((FEATURES,))
    logits = keras.layers.Dense(CLASSES, kernel_regularizer=regularizer,
                                name="expression_logits")(x)
    points = keras.layers.Reshape((68, 2), name="landmarks")(
        keras.layers.Dense(136, bias_initializer="glorot_uniform", name="points")(x))
    return MultiTaskModel(x, {"expression_logits": logits, "landmarks": points},
                          task_weights=WEIGHTS)


def make_batch(n, seed, expression_mask=None, landmarks_mask=None):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.normal(size=(n, FEATURES)).astype("float32"),
        "expression": rng.integers(0, CLASSES, n).astype("int32"),
        "expression_mask": np.asarray(expression_mask if expression_mask is not None
                                      else rng.integers(0, 2, n), "float32"),
        "landmarks": rng.uniform(size=(n, 68, 2)).astype("float32"),
        "landmarks_mask": np.asarray(landmarks_mask if landmarks_mask is not None
                                     else rng.integers(0, 2, n), "float32"),
    }


def numpy_losses(model, batch):
    """Masked CE and l1 of the linear model, and their gradients, from the definitions."""
    w_e, b_e = model.get_layer("expression_logits").get_weights()
    w_l, b_l = model.get_layer("points").get_weights()
    x = batch["image"].astype("float64")
    logits = x @ w_e + b_e
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    onehot = np.eye(CLASSES)[batch["expression"]]
    m_e, m_l = batch["expression_mask"], batch["landmarks_mask"]
    ce = -(np.log(probs) * onehot).sum(1)
    expression = (ce * m_e).sum() / max(m_e.sum(), 1e-7)
    error = x @ w_l + b_l - batch["landmarks"].reshape(len(x), 136)
    landmarks = (np.abs(error).mean(1) * m_l).sum() / max(m_l.sum(), 1e-7)
    g_e = WEIGHTS["expression"] * (probs - onehot) * m_e[:, None] / max(m_e.sum(), 1e-7)
    g_l = WEIGHTS["landmarks"] * np.sign(error) * m_l[:, None] / (136 * max(m_l.sum(), 1e-7))
    gradients = {"expression_logits": (x.T @ g_e, g_e.sum(0)), "points": (x.T @ g_l, g_l.sum(0))}
    return {"expression": expression, "landmarks": landmarks}, gradients


def one_batch(batch):
    return tf.data.Dataset.from_tensors(batch)


def test_logged_losses_are_the_weighted_masked_means():
    model = linear_two_task()
    model.compile(optimizer="sgd")
    batch = make_batch(8, seed=1)
    logs = model.evaluate(one_batch(batch), return_dict=True, verbose=0)
    expected, _ = numpy_losses(model, batch)
    np.testing.assert_allclose(logs["expression_loss"], expected["expression"], rtol=1e-5)
    np.testing.assert_allclose(logs["landmarks_loss"], expected["landmarks"], rtol=1e-5)
    total = sum(WEIGHTS[name] * value for name, value in expected.items())
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-5)


def test_train_step_makes_the_sgd_update_of_the_summed_loss():
    model = linear_two_task()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    batch = make_batch(8, seed=2)
    _, gradients = numpy_losses(model, batch)
    before = {name: model.get_layer(name).get_weights() for name in gradients}
    model.fit(one_batch(batch), epochs=1, verbose=0)
    for name, grads in gradients.items():
        for after, start, grad in zip(model.get_layer(name).get_weights(), before[name], grads,
                                      strict=True):
            np.testing.assert_allclose(after, start - 0.1 * grad, rtol=1e-5, atol=1e-7)


def test_regularisation_losses_are_added_to_the_total():
    model = linear_two_task(l2=0.1)
    model.compile(optimizer="sgd")
    batch = make_batch(8, seed=3)
    logs = model.evaluate(one_batch(batch), return_dict=True, verbose=0)
    expected, _ = numpy_losses(model, batch)
    kernel = model.get_layer("expression_logits").get_weights()[0]
    total = expected["expression"] + 2.0 * expected["landmarks"] + 0.1 * np.sum(kernel**2)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-5)


def test_all_unlabelled_batch_gives_zero_loss_and_leaves_weights_unchanged():
    model = linear_two_task()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = model.get_weights()
    history = model.fit(one_batch(make_batch(4, 4, [0] * 4, [0] * 4)), epochs=1, verbose=0)
    assert history.history["loss"] == [0.0]
    for after, start in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(after, start)


def test_multi_source_batches_are_merged_with_missing_labels_masked_out():
    model = linear_two_task()
    model.compile(optimizer="sgd")
    a = make_batch(4, seed=5)
    b = make_batch(3, seed=6)
    b_without_landmarks = {k: v for k, v in b.items() if not k.startswith("landmarks")}
    logs = model.evaluate(one_batch({"a": a, "b": b_without_landmarks}), return_dict=True,
                          verbose=0)
    b["landmarks_mask"][:] = 0
    union = {key: np.concatenate([a[key], b[key]]) for key in a}
    expected, _ = numpy_losses(model, union)
    np.testing.assert_allclose(logs["expression_loss"], expected["expression"], rtol=1e-5)
    np.testing.assert_allclose(logs["landmarks_loss"], expected["landmarks"], rtol=1e-5)


MIRRORED_SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from fermtl_tf.backbones.resnet import build_resnet
    from fermtl_tf.methods.baseline.model import task_head
    from fermtl_tf.training.multitask import MultiTaskModel
    from fermtl_tf.training.strategy import make_strategy

    def build():
        images = keras.Input((16, 16, 3))
        features = build_resnet(18, 4, (16, 16, 3), stem="compact", sync_batch_norm=True)(images)
        outputs = {**task_head("expression", features, 3), **task_head("landmarks", features, 0)}
        return MultiTaskModel(images, outputs, task_weights={"expression": 1.0, "landmarks": 2.0})

    rng = np.random.default_rng(0)
    # Global batch 8 -> 4 per replica; the replicas hold different numbers of labels
    # (replica 0 has no landmarks at all), which a per-replica mean would get wrong.
    batch = {
        "image": rng.normal(size=(16, 16, 16, 3)).astype("float32"),
        "expression": rng.integers(0, 3, 16).astype("int32"),
        "expression_mask": np.array([1, 1, 1, 0, 1, 0, 0, 0] * 2, "float32"),
        "landmarks": rng.uniform(size=(16, 68, 2)).astype("float32"),
        "landmarks_mask": np.array([0, 0, 0, 0, 1, 1, 1, 1] * 2, "float32"),
    }

    def train(strategy, initial):
        with strategy.scope():
            model = build()
            if initial is not None:
                model.set_weights(initial)
            model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9))
        start = model.get_weights()
        model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8), epochs=1, verbose=0)
        return start, model.get_weights()

    keras.utils.set_random_seed(0)
    initial, one_device = train(tf.distribute.get_strategy(), None)
    strategy = make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    _, two_replicas = train(strategy, initial)
    assert max(np.abs(a - b).max() for a, b in zip(one_device, initial)) > 1e-2
    for a, b in zip(two_replicas, one_device):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("EQUIVALENT")
""")


@pytest.mark.slow
def test_mirrored_two_cpu_replicas_update_like_one_device_on_the_global_batch():
    # Logical devices must be configured before TensorFlow starts: a fresh process.
    # Sync batch norm makes the replicas share batch statistics (see multitask.py).
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "EQUIVALENT" in run.stdout


def test_multi_worker_strategy_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="one_device"):
        make_strategy("everywhere")


def test_step_schedule_multiplies_by_factor_at_each_boundary_epoch():
    schedule = make_schedule(ScheduleConfig(name="step", boundaries=[2, 4], factor=0.1),
                             1.0, steps_per_epoch=10, epochs=6)
    values = [float(schedule(step)) for step in (15, 25, 45)]
    np.testing.assert_allclose(values, [1.0, 0.1, 0.01], rtol=1e-6)


def test_cosine_schedule_is_halfway_down_at_half_the_steps():
    schedule = make_schedule(ScheduleConfig(name="cosine", alpha=0.0), 0.2,
                             steps_per_epoch=10, epochs=4)
    np.testing.assert_allclose(float(schedule(20)), 0.2 * (1 + np.cos(np.pi / 2)) / 2,
                               rtol=1e-6)


@pytest.mark.parametrize("prebuilt, traces", [(False, 2), (True, 1)])
def test_an_optimiser_built_before_fit_lets_fit_trace_the_step_once(monkeypatch, prebuilt,
                                                                    traces):
    # Left to fit, the optimiser's slots (momentum here) are created inside the first trace,
    # which tf.function then traces again (the premise of build_optimizer: the False case).
    traced = []
    step = MultiTaskModel.train_step
    monkeypatch.setattr(MultiTaskModel, "train_step",
                        lambda self, data: traced.append(1) or step(self, data))
    model = linear_two_task()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    if prebuilt:
        build_optimizer(model)
        assert model.optimizer.built
    model.fit(one_batch(make_batch(8, seed=7)).repeat(3), epochs=2, verbose=0)
    assert len(traced) == traces


def test_interrupted_training_resumes_after_the_last_finished_epoch(tmp_path, interrupt_at):
    data = one_batch(make_batch(8, seed=7))
    model = linear_two_task()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    with pytest.raises(RuntimeError, match="interrupted"):
        train_model(model, data, tmp_path, epochs=4, callbacks=[interrupt_at(2)], verbose=0)
    resumed = linear_two_task()
    resumed.compile(optimizer=keras.optimizers.SGD(0.1))
    history = train_model(resumed, data, tmp_path, epochs=4, verbose=0)
    assert history.epoch == [2, 3]
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.1)
    assert (tmp_path / "checkpoints" / "last.keras").exists()


def write_prepared_folder(folder, count=12, size=32, expression_mask=1):
    """A tiny prepared dataset written by hand (schema-encoded shard + manifest.json);
    ``expression_mask=0``: no record has an expression label."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    splits = ["train" if i % 4 else "val" for i in range(count)]
    with tf.io.TFRecordWriter(str(folder / "shard-00000-of-00001.tfrecord")) as writer:
        for i in range(count):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            record = {"image": tf.io.encode_png(image).numpy(), "expression": i % 7,
                      "expression_mask": expression_mask, "split": splits[i]}
            writer.write(schema.encode_example(record, num_aus=0, num_attributes=0))
    manifest = {
        "source": "handmade", "image_size": [size, size], "landmarks_units": "pixels",
        "vocabularies": {"expression": list(BASIC7)}, "au_names": [], "num_aus": 0,
        "attribute_names": [], "num_attributes": 0,
        "splits": {"train": splits.count("train"), "val": splits.count("val")},
        "shards": [{"path": "shard-00000-of-00001.tfrecord", "num_records": count}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_fermtl_train_runs_a_config_end_to_end(tmp_path, capsys):
    from fermtl_tf.cli.train import main

    write_prepared_folder(tmp_path / "data")
    config = {
        "output_dir": "unused", "seed": 0, "method": {"name": "baseline"},
        "data": {"train": [{"folder": str(tmp_path / "data"), "batch_size": 4}],
                 "validation": [{"folder": str(tmp_path / "data"), "split": "val",
                                 "batch_size": 4}],
                 "image_size": [32, 32]},
        "backbone": {"depth": 18, "width": 4, "stem": "compact"},
        "tasks": {"expression": {}},
        "schedule": {"name": "cosine"}, "epochs": 2,
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main([str(tmp_path / "exp.yaml"), "--output", str(out), "--verbose", "0"]) == 0
    assert str(out / "model.keras") in capsys.readouterr().out
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["tasks"]["expression"]["num_classes"] == 7
    assert resolved["output_dir"] == str(out)
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {"loss", "val_loss", "expression_accuracy"} <= set(rows[0])
    model = keras.saving.load_model(out / "model.keras")
    assert model.get_config()["num_classes"] == 7
