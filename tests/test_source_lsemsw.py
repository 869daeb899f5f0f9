"""lsemsw importer: the fermtl-tf LSEMSW CSV, 13 classes, 80/10/10 split, MTCNN crops."""

import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources._listfile_common import partition
from fermtl_tf.data.synthface.layouts.lsemsw import write_lsemsw
from fermtl_tf.knowledge.vocabularies import LSEMSW13


def read(out):
    manifest = tfrecord.read_manifest(out)
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsemsw")
    truth = write_lsemsw(root, num_images=10, num_groups=10, plant_bad=True)
    out = root / "out"
    assert main(["lsemsw", "--root", str(root), "--out", str(out), "--quiet",
                 "--size", "64"]) == 0
    return truth, read(out)


def test_counts_and_the_unknown_class_row(fixture):
    truth, (manifest, _) = fixture
    counts = manifest["counts"]
    assert counts["inputs"] == len(truth) + 1 == counts["written"] + counts["skipped"]
    assert len(manifest["skipped"]) == 1
    assert "lsemsw.csv line 12" in manifest["skipped"][0]["where"]
    assert "bored" in manifest["skipped"][0]["reason"]


def test_labels_follow_the_written_class_names(fixture):
    truth, (manifest, records) = fixture
    assert manifest["vocabularies"]["expression"] == list(LSEMSW13)
    assert all(LSEMSW13[r["expression"]] == truth[n]["expression"] for n, r in records.items())
    assert manifest["crops"] == {"detected": len(records)}


def test_split_is_80_10_10_over_groups(fixture):
    _, (manifest, _) = fixture
    assert manifest["splits"] == {"train": 8, "val": 1, "test": 1}


def test_partition_counts_by_hand_and_independence_from_order():
    keys = [f"k{i}" for i in range(20)]
    table = partition(keys, (0.8, 0.1, 0.1), ("train", "val", "test"), seed=3)
    assert sorted(table.values()).count("train") == 16
    assert table == partition(keys[::-1], (0.8, 0.1, 0.1), ("train", "val", "test"), seed=3)
