"""aff_wild importer on a SynthFace fixture in the original Aff-Wild layout (videos +
per-frame valence/arousal files + .pts boxes and landmarks)."""

import os

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.aff_wild import BAD_LINE, write_aff_wild

FRAMES, SIZE = 11, 64


def load(root, out, *extra):
    args = build_parser().parse_args(["aff_wild", "--root", str(root), "--out", str(out),
                                      *extra])
    return get_source("aff_wild").load(args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("aff_wild")
    truth = write_aff_wild(root / "raw", num_videos=3, frames=FRAMES, size=SIZE,
                           plant_bad=True)
    # --crop-from landmarks is this source's default.
    status = main(["aff_wild", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", str(SIZE), "--folds", "2"])
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def _key(record):
    return record["sequence_id"].decode(), int(record["frame_index"])


def _valid_frames(truth, video):
    return [f for f in range(1, FRAMES + 1) if (video, f) not in truth["bad"]]


def test_counts_and_the_skip_report_name_the_bad_line(prepared):
    truth, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == len(records) + 1
    (skip,) = manifest["skipped"]
    assert skip["where"] == f"annotations/train/valence/101.txt line {BAD_LINE}"
    assert truth["bad"] == [("101", BAD_LINE)]


def test_training_keeps_one_frame_in_five_and_test_keeps_all(prepared):
    truth, _, records = prepared
    kept = {}
    for record in records:
        video, frame = _key(record)
        kept.setdefault(video, []).append(frame)
    for video, split in truth["videos"].items():
        valid = _valid_frames(truth, video)
        expected = valid[::5] if split == "train" else valid
        assert sorted(kept[video]) == expected, video


def test_valence_arousal_are_the_written_values_with_the_video_split(prepared):
    truth, _, records = prepared
    for record in records:
        valence, arousal, _, _ = truth["frames"][_key(record)]
        assert record["va_mask"] == 1
        assert record["valence"] == pytest.approx(valence, abs=1e-5)
        assert record["arousal"] == pytest.approx(arousal, abs=1e-5)
        assert record["split"].decode() == truth["videos"][_key(record)[0]]


def test_landmarks_land_in_crop_pixels_with_the_right_eye_on_the_left(prepared):
    truth, _, records = prepared
    for record in records:
        points = truth["frames"][_key(record)][2]
        low, high = points.min(0), points.max(0)
        side = 1.2 * (high - low).max()  # the global --box-extension 0.2
        expected = (points - ((low + high) / 2 - side / 2)) * SIZE / side
        crop = record["landmarks"].reshape(68, 2)
        np.testing.assert_allclose(crop, expected, atol=1e-2)
        assert crop[36:42, 0].mean() < crop[42:48, 0].mean()


def test_identity_is_the_video_and_no_identity_is_in_two_folds(prepared):
    truth, manifest, records = prepared
    assert manifest["identities"] == {v: i for i, v in enumerate(sorted(truth["videos"]))}
    folds = {}
    for record in records:
        assert manifest["identities"][_key(record)[0]] == record["identity"]
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert len(folds) == 3 and all(len(f) == 1 for f in folds.values())


def test_nested_layout_headers_and_zero_based_frames_give_the_same_labels(tmp_path):
    truth = write_aff_wild(tmp_path / "raw", num_videos=2, frames=6, nested=True,
                           first_frame=0, header=True)
    dataset = load(tmp_path / "raw", tmp_path / "out", "--first-frame", "0",
                   "--train-every", "1")
    assert [f.error for f in dataset.inputs] == [None] * 12
    for face in dataset.inputs:
        valence, arousal, points, box = truth["frames"][(face.sequence_id, face.frame_index)]
        assert (face.valence, face.arousal) == pytest.approx((valence, arousal))
        np.testing.assert_allclose(face.landmarks, points)
        np.testing.assert_allclose(face.face_box, box)
        assert face.split == truth["videos"][face.sequence_id]
    assert sorted(f.frame_index for f in dataset.inputs if f.sequence_id == "101") == [
        0, 1, 2, 3, 4, 5]


def test_a_video_without_its_arousal_file_is_one_skip_naming_the_valence_file(tmp_path):
    write_aff_wild(tmp_path / "raw", num_videos=2, frames=3)
    os.remove(tmp_path / "raw" / "annotations" / "train" / "arousal" / "101.txt")
    dataset = load(tmp_path / "raw", tmp_path / "out")
    skips = [f for f in dataset.inputs if f.error]
    assert len(skips) == 1
    assert skips[0].where == os.path.join("annotations", "train", "valence", "101.txt")
    assert "no arousal file" in skips[0].error
