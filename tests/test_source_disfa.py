"""disfa importer on a SynthFace fixture in the DISFA layout (MJPG videos + AU files)."""

import os

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.disfa import DISFA_AUS, write_disfa

FRAMES = 8


def load(root, out, *extra):
    args = build_parser().parse_args(["disfa", "--root", str(root), "--out", str(out), *extra])
    return get_source("disfa").load(args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("disfa")
    truth = write_disfa(root / "raw", num_subjects=3, frames=FRAMES, plant_bad=True)
    status = main(["disfa", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", "64"])
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, manifest["num_aus"], 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def test_counts_and_skip_report(prepared):
    _, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == 3 * FRAMES + 2
    assert counts["written"] == len(records) == 3 * FRAMES
    reasons = {s["where"]: s["reason"] for s in manifest["skipped"]}
    assert "4;x" in reasons["ActionUnit_Labels/SN001/SN001_au1.txt line 4"]
    assert "past the end of the video" in reasons[f"SN001 frame {FRAMES + 1}"]


def test_occurrence_is_intensity_at_least_two(prepared):
    truth, manifest, records = prepared
    assert manifest["au_names"] == [f"AU{n}" for n in DISFA_AUS]
    for record in records:
        subject, frame = record["sequence_id"].decode(), int(record["frame_index"])
        levels = np.array([truth["intensity"][subject][frame][n] for n in DISFA_AUS])
        mask = np.ones(len(DISFA_AUS))
        if (subject, frame) == ("SN001", 4):
            mask[DISFA_AUS.index(1)] = 0  # its AU1 line is the malformed one
        np.testing.assert_array_equal(record["au_mask"], mask)
        np.testing.assert_array_equal(record["au"], (levels >= 2) * mask)
        np.testing.assert_array_equal(record["au_intensity"], levels * mask)


def test_three_subject_folds_share_no_subject(prepared):
    _, manifest, records = prepared
    folds = {}
    for record in records:
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert all(len(f) == 1 for f in folds.values())
    assert sorted(f.pop() for f in folds.values()) == [0, 1, 2]


def test_frames_are_extracted_once_and_every_n_keeps_every_nth(tmp_path):
    write_disfa(tmp_path / "raw", num_subjects=1, frames=6)
    first = load(tmp_path / "raw", tmp_path / "out", "--every", "2")
    assert [f.frame_index for f in first.inputs] == [1, 3, 5]
    stamps = {f.image_path: os.stat(f.image_path).st_mtime_ns for f in first.inputs}
    second = load(tmp_path / "raw", tmp_path / "out", "--every", "2")
    assert {f.image_path: os.stat(f.image_path).st_mtime_ns for f in second.inputs} == stamps
