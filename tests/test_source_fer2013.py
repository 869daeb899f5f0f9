"""fer2013 importer on a SynthFace fer2013.csv: pixels decoded to a PNG cache, then prepared."""

import cv2
import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.fer2013 import write_fer2013
from fermtl_tf.knowledge.vocabularies import BASIC7

SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    truth = write_fer2013(root / "raw", plant_bad=True)
    assert main(["fer2013", "--root", str(root / "raw"), "--out", str(root / "out"),
                 "--quiet", "--size", "48"]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def _row(truth, record):
    return truth[int(record["image_id"].decode()[4:]) - 2]  # CSV line 2 is row 0


def test_labels_and_usage_follow_the_csv(prepared):
    truth, manifest, records = prepared
    assert manifest["counts"]["written"] == len(records) == len(truth) - 1
    for record in records:
        row = _row(truth, record)
        assert BASIC7[record["expression"]] == row["expression"]
        assert record["split"].decode() == SPLITS[row["usage"]]


def test_the_whole_48px_face_is_kept_unchanged(prepared):
    truth, _, records = prepared
    for record in records:
        crop = cv2.imdecode(np.frombuffer(record["image"], np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(crop, _row(truth, record)["pixels"])


def test_short_pixel_row_is_reported_with_its_line(prepared):
    _, manifest, _ = prepared
    [skip] = manifest["skipped"]
    assert skip["where"] == "fer2013.csv line 3" and "2304 values" in skip["reason"]
