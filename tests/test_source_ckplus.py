"""ckplus importer on a SynthFace fixture in the CK+ layout (nested Emotion/Emotion/)."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.pipeline import count_records, make_dataset
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.ckplus import write_ckplus
from fermtl_tf.knowledge.vocabularies import BASIC6, BASIC7, BASIC8, CKPLUS7


def read_records(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    return manifest, [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
                      for r in tfrecord.iter_records(out)]


@pytest.fixture(scope="module")
def prepared_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckplus")
    truth = write_ckplus(root / "raw", nest_emotion=True, plant_bad=True)
    assert main(["ckplus", "--root", str(root / "raw"), "--out", str(root / "out"), "--quiet",
                 "--crop-from", "landmarks", "--size", "64"]) == 0
    return truth, root / "out"


@pytest.fixture(scope="module")
def prepared(prepared_folder):
    truth, out = prepared_folder
    return truth, *read_records(out)


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


def test_expressions_follow_the_ckplus_codes_in_ckplus7(prepared):
    truth, manifest, records = prepared
    assert manifest["vocabulary_name"] == "ckplus7"
    assert manifest["vocabularies"]["expression"] == [
        "anger", "disgust", "fear", "happiness", "sadness", "surprise", "contempt"]
    for record in records:
        assert record["expression"] == CKPLUS7.index(_sequence(truth, record)["expression"])


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


def _prepare_two_sequences(tmp_path, *options):
    """One subject, an anger and a contempt sequence of 3 frames, prepared with ``options``."""
    truth = write_ckplus(tmp_path / "raw", num_subjects=1, frames_per_sequence=3,
                         unlabelled_sequences=0)
    assert [t["expression"] for t in truth] == ["anger", "contempt"]
    assert main(["ckplus", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--quiet", "--crop-from", "landmarks", "--size", "32", *options]) == 0
    return read_records(tmp_path / "out")


@pytest.mark.parametrize("classes, names", [("basic7", BASIC7), ("basic6", BASIC6)])
def test_class_sets_without_contempt_leave_contempt_out_and_count_it(tmp_path, classes, names):
    manifest, records = _prepare_two_sequences(tmp_path, "--classes", classes)
    assert manifest["vocabulary_name"] == classes
    assert [names[r["expression"]] for r in records] == ["anger"] * 3
    assert manifest["source_info"]["other_classes"] == {"contempt": 3}


def test_basic8_keeps_contempt_with_an_index_after_neutral(tmp_path):
    manifest, records = _prepare_two_sequences(tmp_path, "--classes", "basic8")
    assert sorted(BASIC8[r["expression"]] for r in records) == ["anger"] * 3 + ["contempt"] * 3
    assert manifest["source_info"]["other_classes"] == {}


def test_other_classes_leave_whole_sequences_under_frames_all(tmp_path):
    # only the peak frame carries the label; the unlabelled frames of contempt go too
    manifest, records = _prepare_two_sequences(tmp_path, "--classes", "basic6",
                                               "--frames", "all")
    assert manifest["source_info"]["other_classes"] == {"contempt": 3}
    assert {r["sequence_id"].decode() for r in records} == {"S005_001"}


def test_neutral_first_needs_a_class_set_with_neutral(tmp_path, capsys):
    write_ckplus(tmp_path / "raw", num_subjects=1, frames_per_sequence=3,
                 unlabelled_sequences=0)
    assert main(["ckplus", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--quiet", "--neutral-first"]) != 0
    assert "--classes ckplus7 has none" in capsys.readouterr().err


def test_the_reader_selects_the_prepared_folds_as_unassigned_records(prepared, prepared_folder):
    _, _, records = prepared
    out = str(prepared_folder[1])
    for fold in sorted({int(r["fold"]) for r in records}):
        dataset = make_dataset(out, split="unassigned", folds=fold, batch_size=8,
                               image_size=(16, 16), training=False, keep_metadata=True)
        got = sorted(i for batch in dataset for i in batch["image_id"].numpy())
        assert got == sorted(r["image_id"] for r in records if r["fold"] == fold)
        assert count_records(out, "unassigned", exclude_folds=fold) == len(records) - len(got)
    with pytest.raises(ValueError, match="'unassigned'.*folds / exclude_folds"):
        make_dataset(out, split="train")
