"""aff_wild2 importer on a SynthFace fixture in the Aff-Wild2 (ABAW) layout."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.aff_wild2 import (
    ABAW_AUS,
    INVALID_FRAME,
    OTHER_FRAME,
    write_aff_wild2,
)
from fermtl_tf.knowledge.vocabularies import BASIC7

FRAMES = 12


def load(root, *extra):
    args = build_parser().parse_args(["aff_wild2", "--root", str(root), "--out", "unused",
                                      *extra])
    return get_source("aff_wild2").load(args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("affwild2")
    truth = write_aff_wild2(root / "raw", num_videos=4, frames=FRAMES, plant_bad=True,
                            conflict_video=True)
    status = main(["aff_wild2", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", "64"])  # --box-extension 0: the source default
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, manifest["num_aus"], 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def _video_frame(record):
    _, video, name = record["image_id"].decode().split("/")
    return video, int(name.split(".")[0])


def test_counts_and_skip_report_name_the_bad_line_and_the_missing_image(prepared):
    _, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == len(records) + 2
    where = sorted(s["where"] for s in manifest["skipped"])
    assert where == ["annotations/VA_Set/Training_Set/video01_left.txt line 6",
                     "video01_left frame 7"]


def test_training_keeps_one_valid_frame_in_five_per_video(prepared):
    truth, _, records = prepared
    train = {}
    for record in records:
        if record["split"] == b"train":
            video, frame = _video_frame(record)
            train.setdefault(video, []).append(frame)
    valid = [f for f in range(1, FRAMES + 1) if f != INVALID_FRAME]
    expected = valid[::5]  # frames 1, 7, 12; frame 7 of video01_left has no image
    train_videos = [v for v, s in truth["videos"].items() if s == "train"]
    assert sorted(train) == sorted(train_videos)
    assert sorted(train["video01_left"]) == [f for f in expected if f != 7]
    assert sorted(train["video03_left"]) == expected


def test_validation_keeps_every_valid_frame(prepared):
    truth, _, records = prepared
    val = sorted(_video_frame(r) for r in records if r["split"] == b"val")
    expected = sorted((v, f) for (v, f), t in truth["frames"].items()
                      if truth["videos"][v] == "val" and t is not None)
    assert val == expected


def test_labels_of_the_three_tasks_are_merged_per_frame(prepared):
    truth, manifest, records = prepared
    assert manifest["au_names"] == [f"AU{n}" for n in ABAW_AUS]
    for record in records:
        video, frame = _video_frame(record)
        expected = truth["frames"][(video, frame)]
        np.testing.assert_array_equal(record["au"], [expected["au"][n] for n in ABAW_AUS])
        np.testing.assert_array_equal(record["au_mask"], np.ones(len(ABAW_AUS)))
        if frame == OTHER_FRAME:
            assert record["expression_mask"] == 0  # Other has no basic7 class
        else:
            assert record["expression_mask"] == 1
            assert BASIC7[record["expression"]] == expected["expression"]
        if truth["va_split"][video] == truth["videos"][video]:
            assert record["va_mask"] == 1
            assert record["valence"] == pytest.approx(expected["valence"], abs=1e-4)
            assert record["arousal"] == pytest.approx(expected["arousal"], abs=1e-4)


def test_labels_of_a_task_that_trains_on_a_validation_video_are_dropped(prepared):
    truth, manifest, records = prepared
    conflict = [v for v in truth["videos"] if truth["va_split"][v] != truth["videos"][v]]
    assert manifest["source_info"]["videos_split_conflict"] == conflict
    rows = [r for r in records if _video_frame(r)[0] == conflict[0]]
    assert rows and all(r["split"] == b"val" and r["va_mask"] == 0 for r in rows)


def test_the_whole_cropped_aligned_frame_is_the_face_box(prepared):
    _, manifest, records = prepared
    assert manifest["crops"] == {"given": len(records)}


def test_challenge_layout_gives_the_same_frames(tmp_path):
    write_aff_wild2(tmp_path / "sets", num_videos=2, frames=6)
    write_aff_wild2(tmp_path / "challenge", num_videos=2, frames=6, layout="challenge")
    sets, challenge = load(tmp_path / "sets"), load(tmp_path / "challenge")

    def summary(dataset):
        return sorted((f.sequence_id, f.frame_index, f.split, f.expression, f.valence)
                      for f in dataset.inputs)

    assert summary(sets) == summary(challenge) and len(sets.inputs) > 0
    box = challenge.inputs[0].face_box
    np.testing.assert_array_equal(box, [0, 0, 64, 64])
