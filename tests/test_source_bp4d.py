"""bp4d / bp4d_plus importers on a SynthFace fixture in the BP4D layout."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.sources._au_video_common import AU_SUBSETS
from fermtl_tf.data.synthface.layouts.bp4d import FIRST_FRAME, write_bp4d

FRAMES, TASKS = 4, 2


def load(source, root, *extra):
    args = build_parser().parse_args([source, "--root", str(root), "--out", "unused", *extra])
    return get_source(source).load(args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("bp4d")
    truth = write_bp4d(root / "raw", num_subjects=4, tasks=TASKS, frames=FRAMES,
                       plant_bad=True)
    status = main(["bp4d", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", "64"])
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, manifest["num_aus"], 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def test_counts_and_skip_report(prepared):
    _, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == 4 * TASKS * FRAMES
    assert len(records) == counts["written"] == 4 * TASKS * FRAMES - 2
    where = sorted(s["where"] for s in manifest["skipped"])
    assert where == ["AUCoding/AU_OCC/F001_T1.csv line 4", "AUCoding/AU_OCC/F001_T2.csv line 4"]


def test_fera2015_aus_with_nine_masked(prepared):
    truth, manifest, records = prepared
    aus = AU_SUBSETS["fera2015"]
    assert manifest["au_names"] == [f"AU{n}" for n in aus]
    for record in records:
        subject, task = record["sequence_id"].decode().split("_")
        expected = truth["aus"][(subject, task, int(record["frame_index"]))]
        mask = [float(expected[n] is not None) for n in aus]
        assert mask[aus.index(23)] == float(record["frame_index"] != FIRST_FRAME + 1)
        np.testing.assert_array_equal(record["au_mask"], mask)
        np.testing.assert_array_equal(record["au"], [expected[n] or 0 for n in aus])


def test_three_subject_folds_share_no_subject(prepared):
    _, _, records = prepared
    folds = {}
    for record in records:
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert all(len(f) == 1 for f in folds.values()) and len(folds) == 4
    assert {next(iter(f)) for f in folds.values()} == {0, 1, 2}


def test_bp4d_plus_defaults_to_fera2017_and_finds_frames_in_2dfaceimages(tmp_path):
    write_bp4d(tmp_path, num_subjects=2, tasks=1, frames=2, image_folder="2DFaceImages")
    dataset = load("bp4d_plus", tmp_path)
    assert dataset.au_names == [f"AU{n}" for n in AU_SUBSETS["fera2017"]]
    assert len(dataset.inputs) == 4 and not any(f.error for f in dataset.inputs)
    assert dataset.inputs[0].image_path.endswith("2DFaceImages/F001/T1/0100.jpg")
