"""Hu et al. 2018: stacked ResNet, hard sharing, trace norm, ADA, training, export, analysis."""

import csv
import json
import os
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from fermtl_tf.backbones.resnet import build_resnet
from fermtl_tf.data import schema
from fermtl_tf.export import export_saved_model
from fermtl_tf.methods.hu2018.model import Hu2018Model
from fermtl_tf.methods.hu2018.stacked_resnet import build_stacked_resnet
from fermtl_tf.regularizers import TensorTraceNorm

SIZE = 32
TINY = dict(depth=18, width=4, input_size=SIZE, stem="compact")


def numpy_trace_norm(matrix):
    return np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False).sum()


def source_batch(n, seed, num_classes=5):
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype("float32"),
            "expression": rng.integers(0, num_classes, n).astype("int32"),
            "expression_mask": np.ones(n, "float32"),
            "landmarks": rng.uniform(0.2, 0.8, (n, 68, 2)).astype("float32"),
            "landmarks_mask": np.ones(n, "float32")}


def conv_kernels(network):
    """{conv layer name: kernel variable} of a stacked network (shared ones unwrapped)."""
    kernels = {}
    for layer in network.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, keras.layers.Conv2D) or hasattr(inner, "filters"):
            kernels[inner.name] = inner.kernel
    return kernels


# --- stacked ResNet ----------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_stacked_resnet_without_sharing_equals_independent_resnets(training):
    keras.utils.set_random_seed(1)
    stacked = build_stacked_resnet(2, depth=18, width=4, input_shape=(SIZE, SIZE, 3),
                                   stem="compact")
    rng = np.random.default_rng(0)
    for layer in stacked.layers:  # non-trivial moving statistics for the inference mode
        if hasattr(layer, "moving_variance"):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    x = rng.uniform(-1, 1, (2, 3, SIZE, SIZE, 3)).astype("float32")
    stacked_out = stacked(x, training=training).numpy()
    for task in range(2):
        plain = build_resnet(18, 4, (SIZE, SIZE, 3), stem="compact")
        for layer in plain.layers:
            if not layer.weights:
                continue
            source = stacked.get_layer(layer.name)
            for target, value in zip(layer.weights, source.weights, strict=True):
                target.assign(value.numpy()[..., task])
        expected = plain(x[task], training=training).numpy()
        np.testing.assert_allclose(stacked_out[task], expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("hard_shared_layers", [0, 4])
def test_compiled_inference_gives_each_task_only_its_own_images(hard_shared_layers):
    """A task's output depends on its own images alone, eagerly and in a compiled graph.

    Regression: with ReLU before the stem max-pool, TF 2.21's Grappler rewrote
    MaxPool(Relu(split:1)) of a shared stem to read split:0, so in every tf.function
    inference graph task 1 saw task 0's stem features (RN(k) validation NME 12.9 % in fit
    against 8.1 % from the exported model on the same faces).
    """
    keras.utils.set_random_seed(2)
    network = build_stacked_resnet(2, depth=18, width=4, input_shape=(32, 32, 3),
                                   stem="imagenet", hard_shared_layers=hard_shared_layers)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(-1, 1, (2, 3, 32, 32, 3)).astype("float32"))
    compiled = tf.function(lambda images: network(images, training=False))
    for task in range(2):
        alone = network(tf.stack([x[task], x[task]]), training=False)[task].numpy()
        np.testing.assert_allclose(compiled(x)[task].numpy(), alone, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(network(x, training=False)[task].numpy(), alone,
                                   atol=1e-5, rtol=1e-5)


def test_hard_sharing_rn6_shares_exactly_the_stem_and_the_first_stage():
    network = build_stacked_resnet(2, depth=34, width=2, input_shape=(SIZE, SIZE, 3),
                                   stem="compact", hard_shared_layers=6)
    kernels = conv_kernels(network)
    shared = {name for name, kernel in kernels.items() if kernel.shape.rank == 4}
    expected = {"stem_conv"} | {f"stage1_block{b}_conv{c}" for b in (1, 2, 3) for c in (1, 2)}
    assert shared == expected
    assert all(kernels[name].shape[-1] == 2 for name in set(kernels) - shared)
    assert len(kernels) == 33 + 3  # main path + the three projection shortcuts


def test_hard_sharing_rn14_also_shares_the_second_stage_shortcut():
    network = build_stacked_resnet(2, depth=34, width=2, input_shape=(SIZE, SIZE, 3),
                                   stem="compact", hard_shared_layers=14)
    shared = {n for n, k in conv_kernels(network).items() if k.shape.rank == 4}
    assert len(shared) == 1 + 14 + 1 and "stage2_block1_shortcut_conv" in shared
    assert not any(name.startswith(("stage3", "stage4")) for name in shared)


def test_shared_layers_get_gradient_from_both_tasks_stacked_slices_only_from_their_own():
    keras.utils.set_random_seed(0)
    network = build_stacked_resnet(2, depth=18, width=4, input_shape=(SIZE, SIZE, 3),
                                   stem="compact", hard_shared_layers=4)
    x = tf.random.uniform((2, 3, SIZE, SIZE, 3))
    kernels = conv_kernels(network)
    with tf.GradientTape() as tape:
        task1_loss = tf.reduce_sum(network(x, training=True)[1] ** 2)
    grads = dict(zip(kernels, tape.gradient(task1_loss, list(kernels.values())), strict=True))
    assert np.abs(grads["stage1_block2_conv2"].numpy()).sum() > 0  # shared: task 1 reaches it
    stacked = grads["stage2_block1_conv1"].numpy()
    assert np.abs(stacked[..., 0]).max() == 0 and np.abs(stacked[..., 1]).sum() > 0


def test_trace_norm_covers_the_33_main_path_convs_with_the_laf_value():
    strength = 1e-2
    network = build_stacked_resnet(2, depth=34, width=2, input_shape=(SIZE, SIZE, 3),
                                   stem="compact",
                                   kernel_regularizer=TensorTraceNorm("laf", strength))
    regularised = [layer for layer in network.layers if getattr(layer, "kernel_regularizer", 0)]
    assert len(regularised) == 33
    assert not any("shortcut" in layer.name for layer in regularised)
    expected = strength * sum(numpy_trace_norm(layer.kernel.numpy().reshape(-1, 2))
                              for layer in regularised)
    np.testing.assert_allclose(float(tf.add_n(network.losses)), expected, rtol=1e-4)


@pytest.mark.parametrize("normalize, hard_shared", [("reference", 0), ("reference", 6),
                                                     ("sum", 0)])
def test_reference_normalisation_averages_the_trace_norm_over_the_regularised_layers(
        normalize, hard_shared):
    strength = 1e-2
    model = Hu2018Model(num_classes=3, depth=18, width=2, input_size=SIZE, stem="compact",
                        hard_shared_layers=hard_shared,
                        trace_norm={"method": "laf", "strength": strength,
                                    "normalize": normalize})
    kernels = [layer.kernel.numpy() for layer in model.network.layers
               if getattr(layer, "kernel_regularizer", None) is not None]
    # ResNet-18: 17 main-path convs; RN(6) shares some of them, which are not regularised
    assert len(kernels) == 17 if hard_shared == 0 else 0 < len(kernels) < 17
    total = sum(numpy_trace_norm(kernel.reshape(-1, 2)) for kernel in kernels)
    expected = strength * (total / len(kernels) if normalize == "reference" else total)
    np.testing.assert_allclose(float(tf.add_n(model.losses)), expected, rtol=1e-4)


def test_the_ganin_reversal_schedule_is_added_by_the_ada_configs(tmp_path):
    from fermtl_tf.experiments.config import parse_config
    from fermtl_tf.layers import GradientReversalSchedule
    from fermtl_tf.methods.hu2018.build import callbacks

    raw = experiment_config(tmp_path, "unused", "unused")
    raw["coupling"] = {"name": "ada", "reversal_schedule": "ganin", "gamma": 5.0,
                       "reversal_scale": 0.5}
    config = parse_config(raw)
    model = Hu2018Model(num_classes=3, depth=18, width=2, input_size=SIZE, stem="compact",
                        ada={"reversal_scale": 0.5, "hidden_units": [4]})
    schedule, = [c for c in callbacks(model, config, tmp_path)
                 if isinstance(c, GradientReversalSchedule)]
    assert (schedule.gamma, schedule.max_scale) == (5.0, 0.5)
    # the ADA reversal runs in the training step, outside the functional graph: the
    # schedule must be handed the layer, or fit stops at on_train_begin
    assert schedule.layers == [model.gradient_reversal]
    schedule.set_model(model)
    schedule.params = {"epochs": 2, "steps": 3}
    schedule.on_train_begin()
    schedule.on_epoch_begin(0)
    schedule.on_train_batch_begin(1)  # progress 1 / (2 x 3), gamma 5, up to 0.5
    expected = 0.5 * (2.0 / (1.0 + np.exp(-5.0 / 6.0)) - 1.0)
    np.testing.assert_allclose(float(model.gradient_reversal.scale_variable), expected,
                               rtol=1e-6)
    raw["coupling"]["reversal_schedule"] = "constant"
    assert not [c for c in callbacks(model, parse_config(raw), tmp_path)
                if isinstance(c, GradientReversalSchedule)]


# --- landmark whitening (§4.1) ------------------------------------------------------------


def test_whitening_statistics_are_the_mean_shape_and_one_scale_of_the_labelled_faces():
    from fermtl_tf.methods.hu2018.build import landmark_whitening

    rng = np.random.default_rng(0)
    points = rng.uniform(0.2, 0.8, (6, 68, 2)).astype(np.float32)
    mask = np.array([1, 1, 0, 1, 0, 1], np.float32)
    data = types.SimpleNamespace(training_labels=lambda keys: {
        "landmarks": points, "landmarks_mask": mask})
    whitening = landmark_whitening(data)
    kept = points[mask > 0]
    np.testing.assert_allclose(whitening["mean"], kept.mean(axis=0), rtol=1e-6)
    assert whitening["scale"] == pytest.approx(float(np.std(kept - kept.mean(axis=0))), rel=1e-5)


def test_whitened_model_predicts_crop_coordinates_and_scores_whitened_errors(tmp_path):
    rng = np.random.default_rng(1)
    mean = rng.uniform(0.3, 0.7, (68, 2))
    model = Hu2018Model(num_classes=3, depth=18, width=2, input_size=SIZE, stem="compact",
                        landmark_whitening={"mean": mean.tolist(), "scale": 0.25})
    images = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    # a zero head predicts the mean shape exactly (bias 0 = the mean when whitened)
    head = model.landmarks_head
    head.kernel.assign(np.zeros(head.kernel.shape, np.float32))
    np.testing.assert_allclose(model(images)["landmarks"].numpy(), [mean, mean], atol=1e-6)
    truth = rng.uniform(0, 1, (2, 68, 2)).astype(np.float32)
    batch = {"landmarks": truth, "landmarks_mask": np.array([1.0, 1.0], np.float32)}
    loss = model.landmark_loss(batch, {"landmarks": tf.constant([mean, mean], tf.float32)})
    want = np.abs((np.stack([mean, mean]) - truth) / 0.25).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(loss.values.numpy(), want, rtol=1e-5)
    model.save(tmp_path / "whitened.keras")
    revived = keras.saving.load_model(tmp_path / "whitened.keras")
    assert revived.landmark_whitening["scale"] == 0.25
    np.testing.assert_allclose(revived(images)["landmarks"].numpy(), [mean, mean], atol=1e-6)


# --- ADA -----------------------------------------------------------------------------------


def test_ada_reverses_and_scales_the_feature_gradient_but_not_the_classifier_gradient():
    keras.utils.set_random_seed(0)
    model = Hu2018Model(num_classes=5, **TINY, ada={"weight": 1.0, "reversal_scale": 0.5})
    batch = model.prepare_batch({"expression": source_batch(4, 1),
                                 "landmarks": source_batch(4, 2)})
    features = model.network.trainable_variables
    classifier = model.domain_classifier.trainable_variables

    def ada_gradients():
        with tf.GradientTape() as tape:
            outputs = model.forward_stacked(batch["image"], training=False)
            loss = model.compute_task_losses(batch, outputs)["ada"]
        return tape.gradient(loss, features + classifier)

    reversed_ = ada_gradients()
    model.gradient_reversal.set_scale(-1.0)  # -(-1) * g: the plain gradient, as reference
    plain = ada_gradients()
    for got, ref in zip(reversed_[:len(features)], plain[:len(features)], strict=True):
        np.testing.assert_allclose(got.numpy(), -0.5 * ref.numpy(), atol=1e-7, rtol=1e-5)
    for got, ref in zip(reversed_[len(features):], plain[len(features):], strict=True):
        np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-7, rtol=1e-5)
    assert any(np.abs(g.numpy()).sum() > 0 for g in plain[:len(features)])


def test_ada_loss_is_the_dataset_cross_entropy_of_each_task_on_its_own_images():
    keras.utils.set_random_seed(0)
    model = Hu2018Model(num_classes=5, **TINY, ada={"weight": 1.0})
    sources = {"expression": source_batch(3, 1), "landmarks": source_batch(3, 2)}
    batch = model.prepare_batch(sources)
    outputs = model.forward_stacked(batch["image"])
    loss = float(model.compute_task_losses(batch, outputs)["ada"])
    features = []
    for task, name in enumerate(("expression", "landmarks")):
        stacked = tf.stack([sources[name]["image"]] * 2)
        features.append(model.network(stacked)[task].numpy())
    logits = model.domain_classifier(np.concatenate(features)).numpy().astype("float64")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(log_probs[np.arange(6), [0, 0, 0, 1, 1, 1]])
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


# --- training, serialisation, export ------------------------------------------------------


def full_model():
    return Hu2018Model(num_classes=5, **TINY, trace_norm={"method": "tucker", "strength": 1e-3},
                       hard_shared_layers=4, cross_stitch=True, ada={"weight": 0.5})


def test_model_trains_one_step_under_fit_on_multi_source_batches():
    keras.utils.set_random_seed(0)
    model = full_model()
    data = tf.data.Dataset.from_tensors({"expression": source_batch(4, 1),
                                         "landmarks": source_batch(4, 2)})
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    logs = model.fit(data, epochs=1, verbose=0).history
    assert {"loss", "expression_loss", "landmarks_loss", "ada_loss"} <= set(logs)
    assert all(np.isfinite(v[0]) for v in logs.values())
    changed = [not np.array_equal(b, v.numpy())
               for b, v in zip(before, model.trainable_variables, strict=True)]
    assert all(changed)


def test_model_builds_after_a_functional_baseline_exists_in_the_process():
    from fermtl_tf.methods.baseline.model import BaselineModel

    BaselineModel(task="expression", num_classes=3, **TINY)  # Keras rewrites subclass bases
    model = Hu2018Model(num_classes=5, **TINY)
    assert model(np.zeros((1, SIZE, SIZE, 3), "float32"))["landmarks"].shape == (1, 68, 2)


def test_keras_file_round_trip_keeps_every_option_and_output(tmp_path):
    keras.utils.set_random_seed(0)
    model = full_model()
    x = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    for name, value in model(x).items():
        np.testing.assert_allclose(loaded(x)[name].numpy(), value.numpy(), atol=1e-6)


LOAD_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(sys.argv[1])
    arrays = np.load(sys.argv[2])
    served = loaded.serve(tf.constant(arrays["raw"]))
    assert "fermtl_tf" not in sys.modules
    assert sorted(served) == ["expression_probs", "landmarks"], sorted(served)
    np.testing.assert_allclose(served["landmarks"].numpy(), arrays["landmarks"], atol=1e-5)
    np.testing.assert_allclose(served["expression_probs"].numpy(), arrays["probs"], atol=1e-5)
    print("SERVED_EQUAL")
""")


def test_export_serves_both_task_networks_on_the_same_images(tmp_path):
    keras.utils.set_random_seed(0)
    model = full_model()
    raw = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    x = raw / 127.5 - 1.0
    features = model.network(np.stack([x, x]), training=False).numpy()
    logits = features[0] @ model.expression_head.kernel.numpy() + model.expression_head.bias
    points = features[1] @ model.landmarks_head.kernel.numpy() + model.landmarks_head.bias
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.savez(tmp_path / "expected.npz", raw=raw, probs=probs / probs.sum(1, keepdims=True),
             landmarks=np.asarray(points).reshape(3, 68, 2))
    export_dir = export_saved_model(model, tmp_path / "saved", input_size=SIZE,
                                    normalization="minus_one_one")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(export_dir),
                          str(tmp_path / "expected.npz")], capture_output=True, text=True,
                         env=env, timeout=300, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SERVED_EQUAL" in run.stdout


# --- experiment integration: config, folds, trace norm rate, init_from ---------------------


def write_folder(folder, count, num_classes, seed):
    """A prepared folder by hand: ``fold = i % 3``, every 4th record in split 'val'."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    splits = ["train" if i % 4 else "val" for i in range(count)]
    with tf.io.TFRecordWriter(str(folder / "shard-00000-of-00001.tfrecord")) as writer:
        for i in range(count):
            image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            record = {"image": tf.io.encode_png(image).numpy(), "expression": i % num_classes,
                      "expression_mask": 1, "landmarks_mask": 1, "split": splits[i],
                      "landmarks": rng.uniform(4, SIZE - 4, 136).astype("float32"),
                      "fold": i % 3}
            writer.write(schema.encode_example(record, num_aus=0, num_attributes=0))
    manifest = {
        "source": "handmade", "image_size": [SIZE, SIZE], "landmarks_units": "pixels",
        "vocabularies": {"expression": [f"c{i}" for i in range(num_classes)]},
        "au_names": [], "num_aus": 0, "attribute_names": [], "num_attributes": 0,
        "splits": {"train": splits.count("train"), "val": splits.count("val")},
        "shards": [{"path": "shard-00000-of-00001.tfrecord", "num_records": count}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return str(folder)


def experiment_config(tmp_path, expression, landmarks, **extra):
    return {
        "output_dir": str(tmp_path / "run"), "seed": 0,
        "data": {"train": [{"folder": expression, "name": "expression", "batch_size": 4,
                            "exclude_folds": [2]},
                           {"folder": landmarks, "name": "landmarks", "batch_size": 4}],
                 "image_size": [SIZE, SIZE]},
        "backbone": {"depth": 18, "width": 4, "stem": "compact"},
        "tasks": {"expression": {}, "landmarks": {}},
        "method": {"name": "hu2018"},
        "sharing": {"name": "stacked", "trace_norm": {"method": "laf", "strength": 1e-3}},
        "coupling": {"name": "ada", "weight": 0.5},
        "optimizer": {"name": "sgd", "learning_rate": 0.01}, "epochs": 1, **extra,
    }


@pytest.mark.slow
def test_experiment_trains_with_folds_and_logs_the_trace_norm_rate(tmp_path):
    from fermtl_tf.experiments.config import parse_config
    from fermtl_tf.experiments.experiment import epoch_steps, run_experiment

    expression = write_folder(tmp_path / "expr", 24, 5, seed=1)
    landmarks = write_folder(tmp_path / "lmk", 12, 7, seed=2)
    raw = experiment_config(tmp_path, expression, landmarks)
    kept = [i for i in range(24) if i % 4 and i % 3 != 2]  # split train, fold 2 excluded
    assert epoch_steps(parse_config(raw)) == -(-len(kept) // 4)  # longer than 9 landmarks
    result = run_experiment(raw, verbose=0)
    assert isinstance(result.model, Hu2018Model) and result.model.ada["weight"] == 0.5
    with open(result.output_dir / "trace_norm_rate.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["epoch"]) for r in rows} == {0, 1} and len(rows) == 2 * 17
    stem = result.model.network.get_layer("stem_conv").kernel.numpy()
    last = next(r for r in rows if r["epoch"] == "1" and r["layer"] == "stem_conv")
    np.testing.assert_allclose(float(last["norm"]), numpy_trace_norm(stem.reshape(-1, 2)),
                               rtol=1e-4)
    assert all(float(r["tnr"]) == 1.0 for r in rows if r["epoch"] == "0")


def test_init_from_loads_the_networks_and_keeps_a_mismatched_head_fresh(tmp_path):
    from fermtl_tf.experiments.experiment import initialize_from

    keras.utils.set_random_seed(0)
    source = Hu2018Model(num_classes=5, **TINY, ada={"weight": 1.0})
    source.save(tmp_path / "source.keras")
    target = Hu2018Model(num_classes=7, **TINY, ada={"weight": 1.0})
    initialize_from(target, tmp_path / "source.keras")
    for got, want in zip(target.network.weights, source.network.weights, strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(target.landmarks_head.kernel.numpy(),
                                  source.landmarks_head.kernel.numpy())
    assert target.expression_head.kernel.shape == (32, 7)


def test_stacked_config_rejects_a_hard_sharing_point_inside_a_block(tmp_path):
    from fermtl_tf.experiments.config import ConfigError, parse_config
    from fermtl_tf.methods.hu2018.build import build_model

    raw = experiment_config(tmp_path, "unused", "unused")
    raw["sharing"] = {"name": "stacked", "hard_shared_layers": 5}
    raw["method"]["whiten_landmarks"] = False
    config = parse_config(raw)
    config.tasks["expression"].num_classes = 5
    with pytest.raises(ConfigError, match="sharing: hard_shared_layers.*block boundary"):
        build_model(config, data=None)


def test_stacked_config_text_validates_trace_norm_and_ada_sections():
    from fermtl_tf.experiments.config import parse_config

    raw = yaml.safe_load(textwrap.dedent("""
        output_dir: x
        data: {train: [{folder: a, name: expression}, {folder: b, name: landmarks}]}
        tasks: {expression: {num_classes: 13}, landmarks: {loss: l2}}
        method: {name: hu2018}
        sharing: {name: stacked, trace_norm: {method: tt, strength: 1e-4, svd: randomized}}
        coupling: {name: ada, weight: 0.1, reversal_scale: 2}
    """))
    config = parse_config(raw)
    assert config.sharing.trace_norm.method == "tt" and config.sharing.trace_norm.strength == 1e-4
    assert config.coupling.reversal_scale == 2.0 and config.tasks["landmarks"].loss == "l2"


def test_dataset_fold_selection_keeps_and_drops_the_named_folds(tmp_path):
    from fermtl_tf.data.pipeline import count_records, make_dataset

    folder = write_folder(tmp_path / "data", 12, 5, seed=3)
    folds_of = {"folds": [1], "exclude_folds": [1]}
    for key, values in folds_of.items():
        dataset = make_dataset(folder, split=["train", "val"], batch_size=50, training=False,
                               image_size=(SIZE, SIZE), keep_metadata=True, **{key: values})
        got = sorted(int(f) for b in dataset for f in b["fold"].numpy())
        expected = sorted(i % 3 for i in range(12) if (i % 3 == 1) == (key == "folds"))
        assert got == expected
        assert count_records(folder, ["train", "val"], **{key: values}) == len(expected)


# --- analysis --------------------------------------------------------------------------------


def test_tsne_embedding_keeps_two_separated_feature_sets_apart(tmp_path):
    from fermtl_tf.methods.hu2018.tsne import embed, plot_embeddings

    rng = np.random.default_rng(0)
    sets = {"a": rng.normal(0, 1, (40, 16)), "b": rng.normal(8, 1, (30, 16))}
    points = embed(sets, seed=0, perplexity=10)
    assert points["a"].shape == (40, 2) and points["b"].shape == (30, 2)
    gap = np.linalg.norm(points["a"].mean(0) - points["b"].mean(0))
    spread = max(points["a"].std(0).max(), points["b"].std(0).max())
    assert gap > 2 * spread
    assert plot_embeddings({"panel": points}, tmp_path / "fig.png").exists()


def test_trace_norm_rate_plot_reads_the_logged_csv(tmp_path):
    from fermtl_tf.methods.hu2018.trace_norm_rate import plot_tnr, read_tnr

    path = tmp_path / "trace_norm_rate.csv"
    path.write_text("epoch,layer_index,layer,norm,initial_norm,tnr\n"
                    "0,1,stem_conv,4,4,1\n0,2,c2,2,2,1\n1,1,stem_conv,2,4,0.5\n1,2,c2,1.5,2,0.75\n")
    data = read_tnr(path)
    assert data[1][0] == "stem_conv" and list(data[1][2]) == [1.0, 0.5]
    assert plot_tnr(path, tmp_path / "fig3.png", layers=(1, 2)).exists()
