"""The tf.data reader: labels, units, splits, normalisation, determinism, multi-source."""

import json
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data import schema
from fermtl_tf.data.pipeline import (
    NORMALIZATION_MODES,
    load_manifest,
    make_dataset,
    make_multi_source_dataset,
    normalize_images,
)

AU_NAMES = ["AU1", "AU12L", "AU12R"]
CROP_HW = (40, 50)
TRAIN_AUGMENT = dict(flip=True, rotation_deg=20, scale=(0.9, 1.1), shift=0.05, noise_std=4.0)


def make_records(count, seed, split_of=lambda i: "train" if i % 3 else "test"):
    """Synthetic face records with every label set, landmarks in crop pixels."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(count):
        image = rng.integers(0, 256, (*CROP_HW, 3), dtype=np.uint8)
        records.append({
            "image": image, "image_id": f"s{seed}-{i:03d}", "source": f"src{seed}",
            "identity": i % 4, "sequence_id": f"seq{i // 2}", "frame_index": i % 2,
            "expression": i % 7, "expression_mask": i % 2, "landmarks_mask": 1,
            "landmarks": rng.uniform(0, [CROP_HW[1], CROP_HW[0]], (68, 2)).astype(np.float32),
            "valence": rng.uniform(-1, 1), "arousal": rng.uniform(-1, 1), "va_mask": 1,
            "au": rng.integers(0, 2, 3).astype(np.float32), "au_mask": np.ones(3, np.float32),
            "au_intensity": rng.integers(0, 6, 3).astype(np.float32),
            "attributes": rng.integers(0, 2, 2).astype(np.float32),
            "attributes_mask": np.array([1, 0], np.float32), "domain": seed, "fold": i % 5,
            "split": split_of(i),
        })
    return records


def write_folder(folder, records, num_shards=2):
    """A prepared folder written by hand: schema-encoded shards and a manifest.json."""
    os.makedirs(folder, exist_ok=True)
    shards = []
    for shard in range(num_shards):
        name = f"shard-{shard:05d}-of-{num_shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
            for record in records[shard::num_shards]:
                encoded = dict(record, image=tf.io.encode_png(record["image"]).numpy())
                writer.write(schema.encode_example(encoded, num_aus=3, num_attributes=2))
        shards.append({"path": name, "num_records": len(records[shard::num_shards])})
    splits = {}
    for record in records:
        splits[record["split"]] = splits.get(record["split"], 0) + 1
    manifest = {
        "source": "test", "image_size": list(CROP_HW), "landmarks_units": "pixels",
        "au_names": AU_NAMES, "num_aus": 3, "attribute_names": ["a", "b"], "num_attributes": 2,
        "splits": splits, "shards": shards,
    }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return folder


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    records = make_records(12, seed=1)
    return write_folder(str(tmp_path_factory.mktemp("prepared")), records), records


def read_all(dataset):
    """Concatenate every batch of ``dataset`` into numpy arrays."""
    batches = list(dataset.as_numpy_iterator())
    return {key: np.concatenate([batch[key] for batch in batches]) for key in batches[0]}


def test_eval_batches_carry_the_written_labels(dataset_folder):
    folder, records = dataset_folder
    got = read_all(make_dataset(folder, split="train", batch_size=5, image_size=(32, 32),
                                training=False, normalization="none", keep_metadata=True))
    written = {r["image_id"]: r for r in records if r["split"] == "train"}
    assert sorted(i.decode() for i in got["image_id"]) == sorted(written)
    for row, image_id in enumerate(got["image_id"]):
        record = written[image_id.decode()]
        assert got["expression"][row] == record["expression"]
        assert got["identity"][row] == record["identity"]
        np.testing.assert_allclose(got["valence"][row], record["valence"], rtol=1e-6)
        np.testing.assert_array_equal(got["au_intensity"][row], record["au_intensity"])
        np.testing.assert_array_equal(got["attributes_mask"][row], record["attributes_mask"])
        assert got["sequence_id"][row].decode() == record["sequence_id"]


def test_landmarks_become_crop_fractions(dataset_folder):
    folder, records = dataset_folder
    got = read_all(make_dataset(folder, split=None, batch_size=4, training=False,
                                keep_metadata=True))
    written = {r["image_id"]: r for r in records}
    for row, image_id in enumerate(got["image_id"]):
        expected = written[image_id.decode()]["landmarks"] / [CROP_HW[1], CROP_HW[0]]
        np.testing.assert_allclose(got["landmarks"][row], expected, atol=1e-6)


def test_batch_dtypes_and_shapes(dataset_folder):
    folder, _ = dataset_folder
    batch = next(iter(make_dataset(folder, batch_size=3, image_size=(24, 20), training=False)))
    expected = {
        "image": (tf.float32, [3, 24, 20, 3]), "expression": (tf.int32, [3]),
        "expression_mask": (tf.float32, [3]), "landmarks": (tf.float32, [3, 68, 2]),
        "landmarks_mask": (tf.float32, [3]), "au": (tf.float32, [3, 3]),
        "au_mask": (tf.float32, [3, 3]), "au_intensity": (tf.float32, [3, 3]),
        "valence": (tf.float32, [3]), "arousal": (tf.float32, [3]), "va_mask": (tf.float32, [3]),
        "attributes": (tf.float32, [3, 2]), "attributes_mask": (tf.float32, [3, 2]),
        "identity": (tf.int32, [3]), "domain": (tf.int32, [3]),
    }
    assert {k: (v.dtype, v.shape.as_list()) for k, v in batch.items()} == expected


def test_eval_image_is_bilinear_resize_of_stored_crop(dataset_folder):
    folder, records = dataset_folder
    got = read_all(make_dataset(folder, split="test", batch_size=8, image_size=(32, 36),
                                training=False, normalization="none", keep_metadata=True))
    written = {r["image_id"]: r for r in records}
    for row, image_id in enumerate(got["image_id"]):
        source = written[image_id.decode()]["image"].astype(np.float32)
        expected = cv2.resize(source, (36, 32), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(got["image"][row], expected, atol=0.05)


def test_split_list_reads_both_splits(dataset_folder):
    folder, records = dataset_folder
    got = read_all(make_dataset(folder, split=["train", "test"], batch_size=5, training=False,
                                keep_metadata=True))
    assert sorted(i.decode() for i in got["image_id"]) == sorted(r["image_id"] for r in records)


def test_unknown_split_is_an_error_naming_the_manifest(dataset_folder):
    folder, _ = dataset_folder
    with pytest.raises(ValueError, match="valid.*manifest.json"):
        make_dataset(folder, split="valid")


def test_missing_manifest_error_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "manifest.json")):
        load_manifest(str(tmp_path))


def test_malformed_manifest_error_names_path(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="malformed JSON in .*manifest.json"):
        load_manifest(str(tmp_path))


def test_manifest_without_shards_key_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"num_aus": 0, "num_attributes": 0, "image_size": [8, 8], "au_names": []}))
    with pytest.raises(KeyError, match="shards"):
        load_manifest(str(tmp_path))


@pytest.mark.parametrize("mode", NORMALIZATION_MODES)
def test_normalize_images_matches_numpy(mode):
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    flat = images.reshape(2, -1).astype(np.float64)
    std = np.maximum(flat.std(1), 1 / np.sqrt(flat.shape[1]))
    per_image = ((flat - flat.mean(1, keepdims=True)) / std[:, None]).reshape(images.shape)
    expected = {"minus_one_one": images / 127.5 - 1, "zero_one": images / 255,
                "per_image": per_image, "none": images}[mode]
    np.testing.assert_allclose(normalize_images(images, mode).numpy(), expected, atol=1e-5)


def test_normalize_images_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unit_range"):
        normalize_images(np.zeros((1, 2, 2, 3), np.float32), "unit_range")


def two_epochs(folder, seed):
    dataset = make_dataset(folder, split=None, batch_size=4, image_size=(24, 24),
                           augment=TRAIN_AUGMENT, seed=seed, deterministic=True,
                           keep_metadata=True)
    return [list(dataset.as_numpy_iterator()) for _ in range(2)]


def assert_same_batches(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for key in ("image", "landmarks", "au", "image_id"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_deterministic_mode_repeats_batches_across_runs(dataset_folder):
    folder, _ = dataset_folder
    first, second = two_epochs(folder, seed=3), two_epochs(folder, seed=3)
    for epoch in range(2):
        assert_same_batches(first[epoch], second[epoch])


def test_epochs_get_new_shuffle_and_augmentation(dataset_folder):
    folder, _ = dataset_folder
    epoch_one, epoch_two = two_epochs(folder, seed=3)
    with pytest.raises(AssertionError):
        assert_same_batches(epoch_one, epoch_two)


def test_different_seeds_give_different_batches(dataset_folder):
    folder, _ = dataset_folder
    with pytest.raises(AssertionError):
        assert_same_batches(two_epochs(folder, seed=3)[0], two_epochs(folder, seed=4)[0])


def test_training_flip_swaps_left_right_aus_with_the_image(tmp_path):
    # Records whose AU12L is set and AU12R is not, with a bright image-right half: wherever
    # the bright half ends up, the AU label of that side must follow it.
    records = make_records(6, seed=2, split_of=lambda i: "train")
    for record in records:
        record["au"] = np.array([0, 1, 0], np.float32)  # AU12L (subject's left = image right)
        record["image"][:] = 0
        record["image"][:, CROP_HW[1] // 2:] = 255
    folder = write_folder(str(tmp_path / "flip"), records, num_shards=1)
    got = read_all(make_dataset(folder, batch_size=6, image_size=(16, 16),
                                augment={"flip": True}, normalization="none", seed=0))
    red = got["image"][..., 0]
    right_half_bright = red[:, :, 8:].mean((1, 2)) > red[:, :, :8].mean((1, 2))
    np.testing.assert_array_equal(got["au"][:, 1], right_half_bright.astype(np.float32))
    np.testing.assert_array_equal(got["au"][:, 2], 1.0 - right_half_bright)
    assert 0 < right_half_bright.sum() < 6  # both outcomes happened


def test_multi_source_yields_one_batch_per_source_per_step(tmp_path):
    expr = write_folder(str(tmp_path / "expr"), make_records(5, 3, split_of=lambda i: "train"))
    lmk = write_folder(str(tmp_path / "lmk"), make_records(12, 4, split_of=lambda i: "train"))
    dataset = make_multi_source_dataset(
        {"expr": dict(folder=expr, batch_size=2), "lmk": dict(folder=lmk, batch_size=3)},
        image_size=(16, 16), seed=0, deterministic=True,
    )
    assert int(dataset.cardinality()) == 4  # longest source: ceil(12 / 3)
    epoch = list(dataset.as_numpy_iterator())
    sizes = [(s["expr"]["image"].shape[0], s["lmk"]["image"].shape[0]) for s in epoch]
    assert sizes == [(2, 3)] * 4


def test_multi_source_epoch_reads_longest_source_once(tmp_path):
    expr = write_folder(str(tmp_path / "expr"), make_records(5, 3, split_of=lambda i: "train"))
    lmk = write_folder(str(tmp_path / "lmk"), make_records(12, 4, split_of=lambda i: "train"))
    dataset = make_multi_source_dataset(
        {"expr": dict(folder=expr, batch_size=2, keep_metadata=True),
         "lmk": dict(folder=lmk, batch_size=3, keep_metadata=True)},
        image_size=(16, 16), seed=0, deterministic=True,
    )
    epoch = list(dataset.as_numpy_iterator())
    lmk_ids = np.concatenate([step["lmk"]["image_id"] for step in epoch])
    expr_ids = np.concatenate([step["expr"]["image_id"] for step in epoch])
    assert sorted(lmk_ids) == sorted(f"s4-{i:03d}".encode() for i in range(12))
    assert set(expr_ids) == {f"s3-{i:03d}".encode() for i in range(5)}  # 8 draws cycle 5 records


# -- holdout: a reproducible part of a split (the MML meta-validation quarter) ------------


@pytest.fixture(scope="module")
def holdout_folder(tmp_path_factory):
    records = make_records(160, seed=5, split_of=lambda i: "train" if i % 4 else "test")
    return write_folder(str(tmp_path_factory.mktemp("holdout")), records, num_shards=3), records


def holdout_ids(folder, part, seed=0, fraction=0.25, training=False, stratify=False):
    dataset = make_dataset(folder, split="train", batch_size=16, image_size=(8, 8),
                           training=training, keep_metadata=True,
                           holdout={"fraction": fraction, "seed": seed, "part": part,
                                    "stratify": stratify})
    ids = [i for batch in dataset.as_numpy_iterator() for i in batch["image_id"]]
    assert len(ids) == len(set(ids))
    assert int(dataset.cardinality()) == -(-len(ids) // 16)  # counted with the holdout
    return set(ids)


def test_holdout_parts_are_disjoint_and_cover_the_split(holdout_folder):
    folder, records = holdout_folder
    train = {r["image_id"].encode() for r in records if r["split"] == "train"}
    held, rest = holdout_ids(folder, "holdout"), holdout_ids(folder, "rest")
    assert held.isdisjoint(rest) and held | rest == train
    assert 15 <= len(held) <= 45  # 120 records, fraction 0.25: 30 expected (sd 4.7)


def test_holdout_is_reproducible_and_independent_of_shuffling(holdout_folder):
    folder, _ = holdout_folder
    first = holdout_ids(folder, "holdout")
    assert holdout_ids(folder, "holdout", training=True, seed=0) == first
    assert holdout_ids(folder, "holdout") == first
    other_seed = make_dataset(folder, split="train", batch_size=16, image_size=(8, 8),
                              training=False, keep_metadata=True,
                              holdout={"fraction": 0.25, "seed": 1, "part": "holdout"})
    assert {i for b in other_seed.as_numpy_iterator() for i in b["image_id"]} != first


def test_holdout_grows_with_fraction(holdout_folder):
    folder, _ = holdout_folder
    assert holdout_ids(folder, "holdout", fraction=0.25) <= holdout_ids(folder, "holdout",
                                                                        fraction=0.5)


def test_multi_source_meta_batch_from_the_holdout(holdout_folder):
    folder, _ = holdout_folder
    dataset = make_multi_source_dataset(
        {"train": dict(folder=folder, batch_size=4, keep_metadata=True,
                       holdout={"fraction": 0.25, "part": "rest"}),
         "meta": dict(folder=folder, batch_size=4, keep_metadata=True,
                      holdout={"fraction": 0.25, "part": "holdout"})},
        image_size=(8, 8), seed=0, deterministic=True)
    held = holdout_ids(folder, "holdout")
    for step in dataset.as_numpy_iterator():
        assert set(step["meta"]["image_id"]) <= held
        assert set(step["train"]["image_id"]).isdisjoint(held)


@pytest.mark.parametrize("holdout, message", [
    ({"fraction": 1.5}, "holdout.fraction"),
    ({"part": "val"}, "holdout.part"),
    ({"seed": -1}, "holdout.seed"),
    ({"fractoin": 0.2}, "unknown key"),
    ({"stratify": "yes"}, "holdout.stratify"),
])
def test_bad_holdout_is_named(holdout_folder, holdout, message):
    folder, _ = holdout_folder
    with pytest.raises(ValueError, match=message):
        make_dataset(folder, holdout=holdout)


def test_stratified_holdout_takes_a_rounded_fraction_of_every_class(holdout_folder):
    folder, records = holdout_folder
    train = [r for r in records if r["split"] == "train"]
    strata = {}
    for r in train:
        strata.setdefault(r["expression"] if r["expression_mask"] else -1, set()).add(
            r["image_id"].encode())
    held = holdout_ids(folder, "holdout", stratify=True)
    rest = holdout_ids(folder, "rest", stratify=True)
    assert held.isdisjoint(rest) and held | rest == set().union(*strata.values())
    for ids in strata.values():
        assert len(held & ids) == int(round(0.25 * len(ids)))
    assert holdout_ids(folder, "holdout", stratify=True, training=True) == held
    assert holdout_ids(folder, "holdout", stratify=True, seed=1) != held


# -- the training stream: a fixed sequence, so a resumed run continues it exactly -------


def stream(folder, first_record=0, seed=3, batch_size=4, batches=9):
    dataset = make_dataset(folder, split=None, batch_size=batch_size, image_size=(24, 24),
                           augment=TRAIN_AUGMENT, seed=seed, deterministic=True,
                           keep_metadata=True, repeat=True, drop_remainder=True,
                           first_record=first_record)
    return list(dataset.take(batches).as_numpy_iterator())


def test_training_stream_passes_are_shuffled_permutations(dataset_folder):
    folder, records = dataset_folder
    ids = np.concatenate([b["image_id"] for b in stream(folder, batches=9)])  # 3 passes of 12
    passes = [ids[i:i + 12] for i in (0, 12, 24)]
    expected = sorted(r["image_id"].encode() for r in records)
    assert all(sorted(p) == expected for p in passes)
    assert len({tuple(p) for p in passes}) == 3  # each pass has its own order


def test_training_stream_started_later_continues_the_uninterrupted_one(dataset_folder):
    folder, _ = dataset_folder
    whole = stream(folder, batches=9)
    # 20 records in: the middle of the second pass (12 records a pass), batch-aligned
    assert_same_batches(whole[5:], stream(folder, first_record=20, batches=4))
    assert_same_batches(whole[3:], stream(folder, first_record=12, batches=6))


def test_training_stream_depends_on_the_seed(dataset_folder):
    folder, _ = dataset_folder
    with pytest.raises(AssertionError):
        assert_same_batches(stream(folder, seed=3), stream(folder, seed=4))


def test_multi_source_first_step_continues_the_sequence(tmp_path):
    expr = write_folder(str(tmp_path / "expr"), make_records(5, 3, split_of=lambda i: "train"))
    lmk = write_folder(str(tmp_path / "lmk"), make_records(12, 4, split_of=lambda i: "train"))

    def steps(first_step, epochs):
        sources = {"expr": dict(folder=expr, batch_size=2, keep_metadata=True,
                                augment=TRAIN_AUGMENT),
                   "lmk": dict(folder=lmk, batch_size=3, keep_metadata=True)}
        return list(make_multi_source_dataset(
            sources, image_size=(16, 16), seed=0, deterministic=True, epochs=epochs,
            first_step=first_step).as_numpy_iterator())

    whole = steps(0, 3)
    assert len(whole) == 12  # three epochs of ceil(12 / 3) steps
    later = steps(4, 2)
    for name in ("expr", "lmk"):
        assert_same_batches([s[name] for s in whole[4:]], [s[name] for s in later])


def test_first_record_outside_the_training_stream_is_refused(dataset_folder):
    folder, _ = dataset_folder
    with pytest.raises(ValueError, match="first_record"):
        make_dataset(folder, split=None, training=False, first_record=4)
