"""mmi importer on a SynthFace fixture in the MMI layout: MJPG videos + session/AU XML."""

import cv2
import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources.mmi import table_i_warnings
from fermtl_tf.data.synthface.layouts.mmi import write_mmi
from fermtl_tf.knowledge.vocabularies import BASIC6


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmi")
    truth = write_mmi(root / "raw", plant_bad=True)
    assert main(["mmi", "--root", str(root / "raw"), "--out", str(root / "out"), "--quiet",
                 "--size", "48"]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    sizes = manifest["num_aus"], manifest["num_attributes"]
    records = [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
               for r in tfrecord.iter_records(root / "out")]
    return root, truth, manifest, records


def _session(truth, record):
    return next(t for t in truth if t["stem"] == record["sequence_id"].decode())


def test_frontal_sessions_give_three_middle_frames_each(prepared):
    _, truth, manifest, records = prepared
    frontal = [t for t in truth if t["view"] == "frontal"]
    counts = manifest["counts"]
    assert counts["inputs"] == 3 * len(frontal)
    assert counts["written"] + counts["skipped"] == counts["inputs"] == len(records) + 3
    middle = (7 - 3) // 2
    assert {int(r["frame_index"]) for r in records} == {middle, middle + 1, middle + 2}
    assert manifest["source_info"]["left_out_sessions"] == ["5"]


def test_malformed_session_xml_is_reported_for_its_frames(prepared):
    _, _, manifest, _ = prepared
    reasons = [s["reason"] for s in manifest["skipped"]]
    assert len(reasons) == 3 and all("S001-002.xml" in r and "parse" in r for r in reasons)


def test_emotion_and_aus_follow_the_xml(prepared):
    _, truth, manifest, records = prepared
    assert manifest["vocabulary_name"] == "basic6"
    for record in records:
        session = _session(truth, record)
        assert BASIC6[record["expression"]] == session["expression"]
        frame = int(record["frame_index"]) + 1
        for k, name in enumerate(manifest["au_names"]):
            first, last = session["aus"].get(int(name[2:]), (0, -1))
            assert record["au"][k] == float(first <= frame <= last)


def test_decoded_apex_frame_matches_the_rendered_one(prepared):
    root, truth, _, _ = prepared
    session = truth[0]
    cached = root / "out" / "decoded-cache" / "mmi" / session["stem"] / "00003.png"
    decoded = cv2.cvtColor(cv2.imread(str(cached)), cv2.COLOR_BGR2RGB).astype(float)
    assert np.abs(decoded - session["apex_image"]).mean() < 8  # MJPG is lossy


def test_identities_are_the_subject_numbers_in_single_folds(prepared):
    _, _, _, records = prepared
    folds = {}
    for record in records:
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert sorted(folds) == [1, 2] and all(len(f) == 1 for f in folds.values())


# FERSNet Table I, MMI row, copied from the paper: An 33, Di 32, Fe 28, Ha 42, Sa 32, Su 41.
PAPER_TABLE_I = {"anger": 33, "disgust": 32, "fear": 28, "happiness": 42, "sadness": 32,
                 "surprise": 41}


def test_table_i_selection_gives_no_warning_and_any_other_one_does():
    assert sum(PAPER_TABLE_I.values()) == 208
    assert table_i_warnings(dict(PAPER_TABLE_I), 208, listed=False) == []
    fewer = {**PAPER_TABLE_I, "fear": 27}
    (warning,) = table_i_warnings(fewer, 5, listed=False)
    assert "207 sequences selected" in warning and "fear 27" in warning
    assert "208 frontal sequences" in warning and "fear 28" in warning
    assert "5 of the selected sessions have no View/Pose/Camera metatag" in warning


def test_sessions_without_view_tag_are_counted_as_assumed_frontal(tmp_path, capsys):
    truth = write_mmi(tmp_path / "raw", num_subjects=1, sequences_per_subject=3,
                      frames_per_sequence=3, image_size=48, frontal_tags=False)
    assert main(["mmi", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--size", "32", "--folds", "2"]) == 0
    manifest = tfrecord.read_manifest(tmp_path / "out")
    frontal = [t for t in truth if t["view"] == "frontal"]
    expected = dict.fromkeys(PAPER_TABLE_I, 0)
    for session in frontal:
        expected[session["expression"]] += 1
    info = manifest["source_info"]
    assert info["sequences_per_class"] == expected
    assert info["assumed_frontal_sessions"] == len(frontal) == 3
    (warning,) = [w for w in manifest["warnings"] if "Table I" in w]
    assert "3 sequences selected" in warning and "3 of the selected sessions" in warning
    assert warning in capsys.readouterr().err


def test_expected_counts_none_turns_the_check_off(tmp_path):
    write_mmi(tmp_path / "raw", num_subjects=1, sequences_per_subject=2,
              frames_per_sequence=3, image_size=48, profile_sessions=0)
    assert main(["mmi", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--size", "32", "--folds", "2", "--quiet", "--expected-counts", "none"]) == 0
    manifest = tfrecord.read_manifest(tmp_path / "out")
    assert manifest["warnings"] == []
    assert manifest["source_info"]["assumed_frontal_sessions"] == 0
