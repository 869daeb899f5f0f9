"""afew_va importer on a SynthFace fixture in the AFEW-VA layout (clip folders + JSON)."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.afew_va import write_afew_va

CLIPS, FRAMES, SIZE = 4, 3, 64


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("afew_va")
    truth = write_afew_va(root / "raw", num_clips=CLIPS, frames=FRAMES, plant_bad=True)
    status = main(["afew_va", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", str(SIZE), "--folds", "2"])  # crop from landmarks: default
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def _key(record):
    clip, name = record["image_id"].decode().split("/")
    return clip, name.split(".")[0]


def test_counts_and_skip_report(prepared):
    _, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == CLIPS * FRAMES
    assert len(records) == CLIPS * FRAMES - 1
    (skip,) = manifest["skipped"]
    assert skip["where"] == "001/001.json frame 00002" and "truncated" in skip["reason"]


def test_valence_arousal_are_divided_by_ten(prepared):
    truth, _, records = prepared
    for record in records:
        valence, arousal, _ = truth["frames"][_key(record)]
        assert record["va_mask"] == 1
        assert record["valence"] == pytest.approx(valence / 10)
        assert record["arousal"] == pytest.approx(arousal / 10)


def test_landmarks_land_in_crop_pixels_with_the_right_eye_on_the_left(prepared):
    truth, _, records = prepared
    for record in records:
        points = truth["frames"][_key(record)][2]
        low, high = points.min(0), points.max(0)
        side = 1.2 * (high - low).max()
        expected = (points - ((low + high) / 2 - side / 2)) * SIZE / side
        crop = record["landmarks"].reshape(68, 2)
        np.testing.assert_allclose(crop, expected, atol=1e-2)
        assert crop[36:42, 0].mean() < crop[42:48, 0].mean()


def test_actor_folds_share_no_actor_and_every_frame_is_test(prepared):
    truth, manifest, records = prepared
    assert manifest["identities"] == {"actor_0": 0, "actor_1": 1}
    assert manifest["splits"] == {"test": len(records)}
    folds = {}
    for record in records:
        actor = truth["actors"][_key(record)[0]]
        folds.setdefault(actor, set()).add(int(record["fold"]))
    assert all(len(f) == 1 for f in folds.values()) and len(folds) == 2
