"""300w importer on a SynthFace fixture in the 300-W layout (+ a Menpo-like folder)."""

import os

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


def _w300_args(root, **extra):
    import argparse

    return argparse.Namespace(root=str(root), subset="all", menpo=None, pts_offset=0.5,
                              **extra)


def test_one_pts_convention_on_the_300w_and_manifest_routes(tmp_path):
    import cv2

    from fermtl_tf.data.sources import get_source
    from fermtl_tf.data.sources.manifest_csv import load_manifest_csv
    from fermtl_tf.data.synthface.layouts.w300 import write_pts

    afw = tmp_path / "afw"
    afw.mkdir()
    cv2.imwrite(str(afw / "a.ppm"), np.zeros((40, 50, 3), np.uint8))  # a .ppm is an image
    in_file = np.arange(136, dtype=float).reshape(68, 2) / 4 + 1.0  # 1-based centres
    write_pts(afw / "a.pts", in_file, offset=0.0)  # the numbers as they are in the file
    (tmp_path / "labels.csv").write_text("image_path,pts_path\nafw/a.ppm,afw/a.pts\n")
    from_300w = get_source("300w").load(_w300_args(tmp_path)).inputs
    from_csv = load_manifest_csv(tmp_path / "labels.csv").inputs
    assert [f.image_id for f in from_300w] == ["afw/a.ppm"]
    # 300-W counts pixel centres from 1; this package puts pixel i's centre at i + 0.5
    np.testing.assert_allclose(from_300w[0].landmarks, in_file - 0.5)
    np.testing.assert_allclose(from_csv[0].landmarks, in_file - 0.5)


def test_files_that_are_not_images_are_named_in_warnings(tmp_path):
    import cv2

    from fermtl_tf.data.sources import get_source

    afw = tmp_path / "afw"
    afw.mkdir()
    cv2.imwrite(str(afw / "a.jpg"), np.zeros((40, 50, 3), np.uint8))
    (afw / "a.pts").write_text("version: 1\nn_points: 0\n{\n}\n")
    (afw / "notes.txt").write_text("x")
    (afw / "lonely.pts").write_text("version: 1\n")
    os.mkfifo(afw / "fifo.jpg")  # listed, never opened
    warnings = get_source("300w").load(_w300_args(tmp_path)).warnings
    assert "300w: ignored afw/fifo.jpg (not a regular file)" in warnings
    assert "300w: ignored afw/notes.txt (not an image OpenCV reads)" in warnings
    assert "300w: ignored afw/lonely.pts (a .pts file without an image beside it)" in warnings
    assert not any("a.pts" in w or "a.jpg" in w for w in warnings)
