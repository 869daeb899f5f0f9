"""FES-DA (Zhao et al. §IV-D) and Table V (§IV-C): the synthesis dataset writer, the
recognition-only fine-tuning mode, the pooled training sources and the accuracy of a
classifier on syntheses -- on tiny folders and an untrained tiny FERSNet."""

import hashlib
import json
import os
import types
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data.pipeline import make_dataset
from fermtl_tf.data.schema import encode_example
from fermtl_tf.evaluation.synthesis_error import synthesis_error
from fermtl_tf.evaluation.synthetic_accuracy import synthesis_targets, synthetic_image_accuracy
from fermtl_tf.methods.fersnet.augmentation import (
    SYNTHETIC_SOURCE,
    other_expressions,
    write_synthesis_dataset,
)
from fermtl_tf.methods.fersnet.build import pooled_sources
from fermtl_tf.methods.fersnet.model import FERSNetModel

SIZE = 32
CLASSES = ["anger", "happiness", "surprise"]
TINY = dict(num_classes=3, image_size=(SIZE, SIZE), encoder_widths=[4, 4, 4, 4],
            decoder_widths=[4, 4, 4, 4], classifier_units=4, transformer_channels=2,
            discriminator_widths=[4, 4])
# (identity, expression, labelled, split): 7 labelled training faces, one unlabelled, one test
FACES = [(0, 0, 1, "train"), (0, 1, 1, "train"), (0, 2, 1, "train"), (1, 0, 1, "train"),
         (1, 1, 1, "train"), (2, 2, 1, "train"), (2, 2, 1, "train"), (2, 0, 0, "train"),
         (3, 1, 1, "test")]


def _write_folder(folder, faces, fold=None):
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    shard = "shard-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(os.path.join(folder, shard)) as writer:
        for i, (identity, expression, labelled, split) in enumerate(faces):
            image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            writer.write(encode_example({
                "image": tf.io.encode_png(image).numpy(), "image_id": f"img{i}",
                "identity": identity, "sequence_id": f"s{i}", "split": split,
                "expression": expression, "expression_mask": labelled,
                "fold": -1 if fold is None else fold}, num_aus=0, num_attributes=0))
    digest = hashlib.sha256(open(os.path.join(folder, shard), "rb").read()).hexdigest()
    manifest = {"source": "test", "image_size": [SIZE, SIZE], "image_format": "png",
                "landmarks_units": "pixels", "normalisation": "none",
                "vocabularies": {"expression": CLASSES}, "au_names": [], "num_aus": 0,
                "attribute_names": [], "num_attributes": 0,
                "identities": {str(k): k for k in range(4)},
                "splits": dict(Counter(face[3] for face in faces)),
                "shards": [{"path": shard, "num_records": len(faces), "sha256": digest}]}
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return folder


def _read_all(folder, split="train"):
    rows = []
    for batch in make_dataset(str(folder), split=split, batch_size=64, training=False,
                              image_size=(SIZE, SIZE), keep_metadata=True):
        for i in range(len(batch["image"])):
            rows.append({key: batch[key][i].numpy() for key in
                         ("image_id", "identity", "expression", "expression_mask", "source")})
    return rows


def test_other_expressions_lists_every_other_class_in_order():
    rows, targets = other_expressions([2, 0], 3)
    assert list(zip(rows.tolist(), targets.tolist(), strict=True)) == [
        (0, 0), (0, 1), (1, 1), (1, 2)]


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory):
    root = tmp_path_factory.mktemp("fes_da")
    folder = _write_folder(str(root / "real"), FACES)
    keras.utils.set_random_seed(0)
    model = FERSNetModel(**TINY)
    manifest = write_synthesis_dataset(model, folder, root / "synthetic", (SIZE, SIZE),
                                       "minus_one_one", split="train", generator="tiny")
    return folder, root / "synthetic", manifest


def test_fes_da_writes_every_other_expression_of_each_labelled_face(synthesised):
    _, out, manifest = synthesised
    labelled = [face for face in FACES if face[3] == "train" and face[2]]
    rows = _read_all(out)
    assert len(rows) == len(labelled) * (len(CLASSES) - 1) == manifest["counts"]["written"]
    by_source = {}
    for row in rows:
        source, target = row["image_id"].decode().split("~to")
        assert int(target) == row["expression"] and row["expression_mask"] == 1
        assert row["source"].decode() == SYNTHETIC_SOURCE
        by_source.setdefault(source, []).append(row)
    for i, (identity, expression, is_labelled, split) in enumerate(FACES):
        made = by_source.get(f"img{i}", [])
        if not (is_labelled and split == "train"):
            assert made == []
            continue
        assert sorted(int(r["expression"]) for r in made) == sorted(
            set(range(len(CLASSES))) - {expression})
        assert {int(r["identity"]) for r in made} == {identity}


def test_fes_da_real_plus_synthetic_is_class_balanced(synthesised):
    _, out, manifest = synthesised
    labelled = [face[1] for face in FACES if face[3] == "train" and face[2]]
    synthetic = Counter(int(row["expression"]) for row in _read_all(out))
    real = Counter(labelled)
    assert {c: real[c] + synthetic[c] for c in range(len(CLASSES))} == {
        c: len(labelled) for c in range(len(CLASSES))}
    assert manifest["synthetic"]["per_class"] == {CLASSES[c]: synthetic[c] for c in synthetic}
    assert manifest["synthetic"]["targets_per_image"] == 2
    assert manifest["splits"] == {"train": len(labelled) * 2}


def test_fes_da_refuses_an_existing_folder(synthesised):
    folder, out, _ = synthesised
    with pytest.raises(FileExistsError, match="synthetic"):
        write_synthesis_dataset(FERSNetModel(**TINY), folder, out, (SIZE, SIZE), "minus_one_one")


def test_recognition_only_step_leaves_the_synthesis_side_untouched():
    keras.utils.set_random_seed(1)
    model = FERSNetModel(train_synthesis=False, **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  discriminator_optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(0)
    batch = {"image": tf.constant(rng.uniform(-1, 1, (4, SIZE, SIZE, 3)), tf.float32),
             "expression": tf.constant([0, 1, 2, 0]),
             "expression_mask": tf.ones(4)}  # no target pair needed
    synthesis = [*model.transformer.weights, *model.decoder.weights,
                 *model.discriminator.weights]
    before = [v.numpy().copy() for v in synthesis]
    classifier_before = [v.numpy().copy() for v in model.classifier.trainable_weights]
    model.train_step(batch)
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, synthesis, strict=True))
    assert all(not np.array_equal(b, v.numpy()) for b, v in
               zip(classifier_before, model.classifier.trainable_weights, strict=True))
    assert FERSNetModel.from_config(model.get_config()).train_synthesis is False


def test_pooled_sources_reads_every_source_once_per_epoch_in_full_batches(tmp_path):
    first = _write_folder(str(tmp_path / "a"), FACES[:6])
    second = _write_folder(str(tmp_path / "b"), FACES[:5])
    source = types.SimpleNamespace(split="train", folds=None, exclude_folds=None,
                                   batch_size=2, augment=None)
    config = types.SimpleNamespace(
        seed=0, deterministic=True,
        data=types.SimpleNamespace(image_size=[SIZE, SIZE], normalization="minus_one_one",
                                   shuffle_buffer=1,
                                   train=[types.SimpleNamespace(folder=first, **vars(source)),
                                          types.SimpleNamespace(folder=second, **vars(source))]))
    stream, steps = pooled_sources(config)
    assert steps == (6 + 5) // 2
    batches = list(stream.take(2 * steps).as_numpy_iterator())
    assert all(batch["image"].shape[0] == 2 for batch in batches)
    # a run resumed at epoch 1 reads what the uninterrupted stream read in epoch 1
    resumed = list(pooled_sources(config, first_epoch=1)[0].take(steps).as_numpy_iterator())
    for a, b in zip(batches[steps:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


def test_synthesis_targets_with_and_without_the_source_expression():
    sources, targets = synthesis_targets([1, 0], 2)
    assert list(zip(sources.tolist(), targets.tolist(), strict=True)) == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    sources, targets = synthesis_targets([1, 0], 2, include_source=False)
    assert list(zip(sources.tolist(), targets.tolist(), strict=True)) == [(0, 0), (1, 1)]


def test_synthetic_image_accuracy_against_a_hand_count():
    # The "generator" writes the target into pixel [0, 0, 0] except for faces whose own
    # expression is 2 (it fails on them: writes 0); the "classifier" reads that pixel.
    def synthesize(images, targets):
        out = np.zeros((len(targets), 2, 2, 3), np.float32)
        out[:, 0, 0, 0] = np.where(images[:, 0, 0, 1] == 2, 0, targets)
        return out

    def classify(images):
        return np.eye(3)[np.asarray(images)[:, 0, 0, 0].astype(int)]

    images = np.zeros((3, 2, 2, 3), np.float32)
    images[:, 0, 0, 1] = [0, 2, 1]  # the faces' own expressions, visible to the fake
    batch = {"image": images, "expression": np.array([0, 2, 1]),
             "expression_mask": np.ones(3)}
    result = synthetic_image_accuracy(classify, synthesize, [batch], 3)
    # 9 syntheses; the face of class 2 yields predictions 0,0,0 for targets 0,1,2
    # (right only for target 0): 3 + 1 + 3 = 7 correct
    assert result["num_samples"] == 9 and result["num_source_images"] == 3
    assert result["accuracy"] == pytest.approx(7 / 9)
    assert result["per_target_accuracy"] == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert result["confusion_matrix"] == [[3, 0, 0], [1, 2, 0], [1, 0, 2]]


def test_light_cnn_trained_on_identities_loads_as_the_identity_network(tmp_path):
    from fermtl_tf.backbones.light_cnn import light_cnn_9, load_light_cnn_weights
    from fermtl_tf.backbones.light_cnn_training import num_identities, train_light_cnn

    folder = _write_folder(str(tmp_path / "faces"), FACES)
    assert num_identities(folder) == 4
    trained, accuracy = train_light_cnn(folder, tmp_path / "lcnn.keras", input_size=16,
                                        epochs=1, batch_size=4)
    assert 0.0 <= accuracy <= 1.0
    assert trained.output["identity_logits"].shape[-1] == 4
    features = light_cnn_9((16, 16, 1))
    load_light_cnn_weights(features, tmp_path / "lcnn.keras")
    grey = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(features(grey).numpy(),
                               trained(grey, training=False)["features"].numpy(), atol=1e-5)


def test_synthesis_error_against_hand_references():
    # identity 0 shows expressions 0 (two frames) and 1; identity 1 shows only expression 0
    images = np.zeros((4, 1, 1, 3), np.float32)
    images[:, 0, 0, 0] = [0.2, 0.4, 1.0, 0.5]
    identities, expressions = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 0])
    # references: R(0,0) = 0.3, R(0,1) = 1.0; pairs: faces 0 and 1 -> 1, face 2 -> 0
    seen = []

    def synthesize(batch, targets):
        seen.extend(targets.tolist())
        return np.full_like(batch, 0.9)

    result = synthesis_error(synthesize, images, identities, expressions)
    assert result["num_pairs"] == 3 and sorted(seen) == [0, 1, 1]
    channel_mean = [((0.9 - 1.0) ** 2 + 0.9 ** 2 * 2) / 3, ((0.9 - 1.0) ** 2 + 0.9 ** 2 * 2) / 3,
                    ((0.9 - 0.3) ** 2 + 0.9 ** 2 * 2) / 3]
    assert result["synthesis_mse"] == pytest.approx(np.mean(channel_mean))
    copy = [(0.2 - 1.0) ** 2, (0.4 - 1.0) ** 2, (1.0 - 0.3) ** 2]
    assert result["copy_source_mse"] == pytest.approx(np.mean(copy) / 3)
    mean_face = 2.1 / 4
    assert result["mean_face_mse"] == pytest.approx(
        np.mean([(mean_face - 1.0) ** 2, (mean_face - 1.0) ** 2, (mean_face - 0.3) ** 2]) / 3)
