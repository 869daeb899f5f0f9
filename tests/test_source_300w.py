"""300w importer on a SynthFace fixture in the 300-W layout (+ a Menpo-like folder)."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.w300 import write_300w


def _prepare(root, *extra):
    assert main(["300w", "--root", str(root / "raw"), "--out", str(root / "out"), "--quiet",
                 "--crop-from", "landmarks", "--size", "64", *extra]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return manifest, records


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("w300")
    truth = write_300w(root / "raw", menpo_root=root / "menpo", plant_bad=True)
    return truth, *_prepare(root, "--menpo", str(root / "menpo"))


def test_splits_follow_the_part_folders(prepared):
    truth, manifest, records = prepared
    by_id = {r["image_id"].decode(): r["split"].decode() for r in records}
    for entry in truth:
        key = ("menpo/" if entry["menpo"] else "") + entry["path"]
        if entry["bad"] is None:
            assert by_id[key] == entry["split"]
    assert manifest["counts"]["written"] + manifest["counts"]["skipped"] == len(truth)


def test_bad_pts_and_profile_pts_are_reported(prepared):
    _, manifest, _ = prepared
    reasons = {s["input"]: s["reason"] for s in manifest["skipped"]}
    assert sorted(reasons) == ["ibug/image_0000.jpg", "menpo/trainset/image_0001.jpg"]
    assert "menpo/trainset/image_0001.pts has 39 points" in reasons["menpo/trainset/image_0001.jpg"]
    assert "ibug/image_0000.pts holds a non-numeric point" in reasons["ibug/image_0000.jpg"]


def test_pts_points_become_the_rendered_landmarks(prepared):
    truth, _, records = prepared
    entry = truth[0]
    record = next(r for r in records if r["image_id"].decode() == entry["path"])
    written = entry["landmarks"]  # the writer adds 0.5; the importer removes it
    low, high = written.min(0), written.max(0)
    side = 1.2 * (high - low).max()
    expected = (written - ((low + high) / 2 - side / 2)) * 64 / side
    np.testing.assert_allclose(record["landmarks"].reshape(68, 2), expected, atol=0.05)


def test_subject_right_eye_is_left_of_left_eye_in_the_crop(prepared):
    _, _, records = prepared
    for record in records:
        points = record["landmarks"].reshape(68, 2)
        assert points[36:42, 0].mean() < points[42:48, 0].mean()


def test_full_subset_is_common_plus_challenging(tmp_path):
    write_300w(tmp_path / "raw", images_per_part=1)
    manifest, records = _prepare(tmp_path, "--subset", "full")
    assert manifest["splits"] == {"challenging": 1, "common": 2}
    assert len(records) == 3
