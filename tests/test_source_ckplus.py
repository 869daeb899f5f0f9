"""ckplus importer on a SynthFace fixture in the CK+ layout (nested Emotion/Emotion/)."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.ckplus import write_ckplus
from fermtl_tf.knowledge.vocabularies import BASIC7, BASIC8


def read_records(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    return manifest, [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
                      for r in tfrecord.iter_records(out)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckplus")
    truth = write_ckplus(root / "raw", nest_emotion=True, plant_bad=True)
    assert main(["ckplus", "--root", str(root / "raw"), "--out", str(root / "out"), "--quiet",
                 "--crop-from", "landmarks", "--size", "64"]) == 0
    return truth, *read_records(root / "out")


def _sequence(truth, record):
    subject, sequence = record["sequence_id"].decode().split("_")
    return next(t for t in truth if (t["subject"], t["sequence"]) == (subject, sequence))


def test_counts_cover_last_three_frames_of_labelled_sequences(prepared):
    truth, manifest, records = prepared
    labelled = [t for t in truth if t["expression"]]
    counts = manifest["counts"]
    assert counts["inputs"] == 3 * len(labelled)
    assert counts["written"] + counts["skipped"] == counts["inputs"] == len(records) + 4


def test_planted_bad_image_and_emotion_file_are_reported(prepared):
    truth, manifest, _ = prepared
    reasons = [s["reason"] for s in manifest["skipped"]]
    bad_image = next(t for t in truth if t["bad"] == "image")["frames"][-1]
    assert sum("truncated" in r and bad_image in r for r in reasons) == 1
    assert sum("_emotion.txt line 1" in r for r in reasons) == 3


def test_expressions_follow_the_ckplus_codes_in_basic8(prepared):
    truth, manifest, records = prepared
    assert manifest["vocabulary_name"] == "basic8"
    for record in records:
        assert record["expression"] == BASIC8.index(_sequence(truth, record)["expression"])


def test_facs_aus_and_intensities_match_the_written_file(prepared):
    truth, manifest, records = prepared
    for record in records:
        aus = _sequence(truth, record)["aus"]
        for k, name in enumerate(manifest["au_names"]):
            number = int(name[2:])
            assert record["au"][k] == float(number in aus)
            assert record["au_intensity"][k] == aus.get(number, 0.0)
        assert record["au_mask"].all()


def test_kept_frames_are_the_last_three(prepared):
    truth, _, records = prepared
    for record in records:
        frames = _sequence(truth, record)["frames"]
        assert record["image_id"].decode() in frames[-3:]


def test_subject_right_eye_is_left_of_left_eye_in_the_crop(prepared):
    _, _, records = prepared
    for record in records:
        points = record["landmarks"].reshape(68, 2)
        assert points[36:42, 0].mean() < points[42:48, 0].mean()


def test_landmarks_are_the_written_ones_in_crop_pixels(prepared):
    truth, _, records = prepared
    record = records[0]
    written = _sequence(truth, record)["landmarks"][record["image_id"].decode()]
    crop = record["landmarks"].reshape(68, 2)
    # independent: square box 1.2 x the landmarks' longer side, same centre, scaled to 64
    low, high = written.min(0), written.max(0)
    side = 1.2 * (high - low).max()
    expected = (written - ((low + high) / 2 - side / 2)) * 64 / side
    np.testing.assert_allclose(crop, expected, atol=0.05)


def test_no_identity_in_two_folds(prepared):
    _, _, records = prepared
    folds = {}
    for record in records:
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert all(len(f) == 1 and min(f) >= 0 for f in folds.values())
    assert set(folds) == {5, 10, 15}


def test_six_classes_drop_contempt(tmp_path):
    truth = write_ckplus(tmp_path / "raw", num_subjects=1, frames_per_sequence=3,
                         unlabelled_sequences=0)
    assert main(["ckplus", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--quiet", "--crop-from", "landmarks", "--size", "32", "--classes", "6"]) == 0
    manifest, records = read_records(tmp_path / "out")
    assert manifest["vocabulary_name"] == "basic7"
    assert [t["expression"] for t in truth] == ["anger", "contempt"]
    assert [BASIC7[r["expression"]] for r in records] == ["anger"] * 3
