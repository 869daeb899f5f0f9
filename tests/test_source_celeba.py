"""celeba importer: attributes, identities, official and subject-dependent splits."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources.celeba import subject_dependent_split
from fermtl_tf.data.synthface.layouts.celeba import CELEBA_ATTRIBUTES, write_celeba


def read(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    records = [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


def prep(root, out, *extra):
    assert main(["celeba", "--root", str(root), "--out", str(out), "--quiet", "--size", "64",
                 *extra]) == 0
    return read(out)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    truth = write_celeba(root, plant_bad=True)
    return root, truth, prep(root, root / "out", "--folds", "3")


def test_counts_and_the_truncated_image(fixture):
    _, truth, (manifest, _) = fixture
    counts = manifest["counts"]
    assert counts["inputs"] == len(truth) == counts["written"] + counts["skipped"]
    assert [s["input"] for s in manifest["skipped"]] == ["000002.jpg"]


def test_attributes_are_zero_one_with_celeba_names(fixture):
    _, truth, (manifest, records) = fixture
    assert manifest["attribute_names"] == [n.lower() for n in CELEBA_ATTRIBUTES]
    for name, record in records.items():
        expected = (np.array(truth[name]["attributes"]) + 1) / 2
        np.testing.assert_array_equal(record["attributes"], expected)


def test_identities_are_numbered_in_celeb_id_order(fixture):
    _, truth, (manifest, records) = fixture
    ids = sorted({t["identity"] for t in truth.values()})
    assert manifest["identities"] == {str(c): i for i, c in enumerate(ids)}
    assert all(ids[r["identity"]] == truth[n]["identity"] for n, r in records.items())


def test_official_partition_and_identity_folds(fixture):
    _, truth, (_, records) = fixture
    names = {0: b"train", 1: b"val", 2: b"test"}
    assert all(r["split"] == names[truth[n]["partition"]] for n, r in records.items())
    folds = {}
    for record in records.values():
        folds.setdefault(record["identity"], set()).add(record["fold"])
    assert all(len(f) == 1 for f in folds.values())


def test_subject_dependent_split_puts_every_identity_in_every_split(fixture, tmp_path):
    root, truth, _ = fixture
    _, records = prep(root, tmp_path, "--split", "subject-dependent", "--images", "wild")
    splits = {}
    for record in records.values():
        splits.setdefault(record["identity"], set()).add(record["split"])
    assert all(s == {b"train", b"val", b"test"} for s in splits.values())


def test_subject_dependent_split_sizes_by_hand():
    table, small = subject_dependent_split({0: list("abcdefghij"), 1: ["x", "y"]},
                                           (0.8, 0.1, 0.1), seed=0)
    per_split = [sum(1 for k in "abcdefghij" if table[k] == s) for s in ("train", "val", "test")]
    assert per_split == [8, 1, 1]
    assert sorted([table["x"], table["y"]]) == ["test", "train"] and small == 1
