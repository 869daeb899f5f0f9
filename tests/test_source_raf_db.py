"""raf_db importer on SynthFace fixtures in RAF-DB's native layout."""

import cv2
import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.raf_db import write_raf_db
from fermtl_tf.knowledge.vocabularies import BASIC7

#: RAF-DB README: 1 surprise, 2 fear, 3 disgust, 4 happiness, 5 sadness, 6 anger, 7 neutral.
RAF_NATIVE = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness",
              6: "anger", 7: "neutral"}


def read(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    records = [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    root = tmp_path_factory.mktemp("raf")
    truth = write_raf_db(root, plant_bad=True)
    out = root / "out"
    assert main(["raf_db", "--root", str(root), "--out", str(out), "--quiet",
                 "--size", "100"]) == 0
    return root, truth, read(out)


def test_counts_add_up_and_the_truncated_image_is_reported(basic):
    _, truth, (manifest, records) = basic
    counts = manifest["counts"]
    assert counts["inputs"] == len(truth) == counts["written"] + counts["skipped"]
    assert [s["input"] for s in manifest["skipped"]] == ["train_00002.jpg"]
    assert "truncated" in manifest["skipped"][0]["reason"]
    assert "list_patition_label.txt line 2" in manifest["skipped"][0]["where"]


def test_native_labels_are_remapped_to_basic7_and_split_follows_the_prefix(basic):
    _, truth, (_, records) = basic
    for name, record in records.items():
        assert BASIC7[record["expression"]] == RAF_NATIVE[truth[name]["label"]]
        assert record["split"].decode() == name.split("_")[0]


def test_aligned_image_is_used_whole(basic):
    root, _, (_, records) = basic
    stored = cv2.imdecode(np.frombuffer(records["train_00003.jpg"]["image"], np.uint8), 1)
    aligned = cv2.imread(str(root / "Image" / "aligned" / "train_00003_aligned.jpg"))
    assert np.abs(stored.astype(float) - aligned).mean() < 2.0


def test_original_images_are_cropped_with_the_distributed_box(tmp_path):
    truth = write_raf_db(tmp_path, num_train=3, num_test=1)
    out = tmp_path / "out"
    assert main(["raf_db", "--root", str(tmp_path), "--images", "original", "--out", str(out),
                 "--quiet", "--size", "64"]) == 0
    manifest, records = read(out)
    assert manifest["crops"] == {"given": len(truth)}


def test_missing_list_file_is_one_error_naming_the_path(tmp_path, capsys):
    assert main(["raf_db", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "list_patition_label.txt" in capsys.readouterr().err
