"""Split and fold selection of the reader, and the fold roles of k-fold protocols.

Expected selections are computed from the record lists written here, in plain Python.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.data import schema
from fermtl_tf.data.pipeline import check_selection, count_records, make_dataset
from fermtl_tf.data.protocols import fold_roles

PNG = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy()


def write_folder(folder, records):
    """Shards of ``records`` (image_id, split, fold) and the manifest prepare would write."""
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "shard-0.tfrecord")) as writer:
        for record in records:
            writer.write(schema.encode_example(dict(record, image=PNG), 0, 0))
    splits, folds = {}, {}
    for record in records:
        name = record["split"] or "unassigned"
        splits[name] = splits.get(name, 0) + 1
        if record["fold"] >= 0:
            folds[str(record["fold"])] = folds.get(str(record["fold"]), 0) + 1
    manifest = {"image_size": [8, 8], "au_names": [], "num_aus": 0, "num_attributes": 0,
                "splits": splits, "folds": folds,
                "shards": [{"path": "shard-0.tfrecord", "num_records": len(records)}]}
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    return folder


#: A cross-validation dataset as the CK+ importer writes it: no split, 4 folds, and two
#: records outside every fold (an unknown identity).
CV_RECORDS = [{"image_id": f"cv{i}", "split": "", "fold": i % 4 if i < 16 else -1}
              for i in range(18)]
#: A dataset with splits and folds: the train records carry folds 0-2, test none.
MIXED_RECORDS = ([{"image_id": f"tr{i}", "split": "train", "fold": i % 3} for i in range(9)]
                 + [{"image_id": f"te{i}", "split": "test", "fold": -1} for i in range(4)])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    return write_folder(str(root / "cv"), CV_RECORDS), write_folder(str(root / "mixed"),
                                                                    MIXED_RECORDS)


def selected_ids(folder, **selection):
    dataset = make_dataset(folder, batch_size=4, image_size=(8, 8), training=False,
                           keep_metadata=True, **selection)
    return sorted(i.decode() for batch in dataset for i in batch["image_id"].numpy())


def expected_ids(records, splits=None, folds=None, exclude=()):
    return sorted(r["image_id"] for r in records
                  if (splits is None or r["split"] in splits)
                  and (folds is None or r["fold"] in folds) and r["fold"] not in exclude)


@pytest.mark.parametrize("selection, splits, folds, exclude", [
    (dict(split="unassigned"), {""}, None, ()),
    (dict(split="unassigned", folds=[1, 3]), {""}, {1, 3}, ()),
    (dict(split=None, exclude_folds=2), None, None, (2,)),
    (dict(split="unassigned", folds=-1), {""}, {-1}, ()),
])
def test_unassigned_split_and_folds_select_the_cross_validation_records(
        folders, selection, splits, folds, exclude):
    got = selected_ids(folders[0], **selection)
    assert got == expected_ids(CV_RECORDS, splits, folds, exclude)
    assert count_records(folders[0], **selection) == len(got)


@pytest.mark.parametrize("selection, splits, folds, exclude", [
    (dict(split=["train", "test"], folds=[0]), {"train", "test"}, {0}, ()),
    (dict(split="train", exclude_folds=[1]), {"train"}, None, (1,)),
    (dict(split=["test"]), {"test"}, None, ()),
])
def test_split_lists_combine_with_folds(folders, selection, splits, folds, exclude):
    got = selected_ids(folders[1], **selection)
    assert got == expected_ids(MIXED_RECORDS, splits, folds, exclude)
    assert count_records(folders[1], **selection) == len(got)


def test_training_split_of_a_cross_validation_dataset_says_how_to_select(folders):
    with pytest.raises(ValueError) as error:
        make_dataset(folders[0], split="train")
    message = str(error.value)
    assert os.path.join(folders[0], "manifest.json") in message
    assert "splits: ['unassigned']; folds: [0, 1, 2, 3]" in message
    assert "folds / exclude_folds" in message


def test_a_fold_the_manifest_does_not_count_is_an_error(folders):
    with pytest.raises(ValueError, match=r"folds \[4\] not in .*folds: \[0, 1, 2, 3\]"):
        make_dataset(folders[0], split=None, folds=[3, 4])


@pytest.mark.parametrize("repeat", [False, True])
def test_an_empty_selection_is_an_error_naming_the_folder(folders, repeat):
    # the test records have no fold; with repeat an empty selection would hang forever
    with pytest.raises(ValueError, match=r"no record of split 'test' .*splits: \['test'"):
        make_dataset(folders[1], split="test", folds=[0], repeat=repeat)
    with pytest.raises(ValueError, match=folders[1]):
        check_selection(folders[1], split="test", folds=[0])


def test_a_split_must_be_names(folders):
    with pytest.raises(ValueError, match="split must be a name"):
        make_dataset(folders[1], split=[1])


def test_fold_roles_of_liu_et_al_on_ckplus():
    # 8 folds, 6 train / 1 validation / 1 test; validation is the next fold, cyclically
    assert fold_roles(8, 0) == ((2, 3, 4, 5, 6, 7), (1,), (0,))
    assert fold_roles(8, 7) == ((1, 2, 3, 4, 5, 6), (0,), (7,))


def test_fold_roles_partition_the_folds_and_rotate_every_role():
    k = 5
    rounds = [fold_roles(k, test, val_folds=2) for test in range(k)]
    for train, val, test in rounds:
        assert sorted(train + val + test) == list(range(k))
        assert list(train) == sorted(train)
    for role, times in ((1, 2), (2, 1)):  # each fold validates twice, is tested once
        counts = np.bincount([f for r in rounds for f in r[role]], minlength=k)
        assert counts.tolist() == [times] * k


def test_fold_roles_without_validation_is_plain_k_fold():
    assert fold_roles(3, 1, val_folds=0) == ((0, 2), (), (1,))


@pytest.mark.parametrize("args, match", [
    ((1, 0), "num_folds >= 2"), ((4, 4), "test_fold"), ((4, 0, 3), "val_folds"),
])
def test_fold_roles_rejects_impossible_rounds(args, match):
    with pytest.raises(ValueError, match=match):
        fold_roles(*args)
