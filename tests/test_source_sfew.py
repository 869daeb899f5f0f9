"""sfew importer on SynthFace fixtures in the SFEW 2.0 layout (frames with MTCNN; aligned)."""

import cv2
import numpy as np

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.sfew import write_sfew
from fermtl_tf.knowledge.vocabularies import BASIC7


def _prepare(root, *extra):
    assert main(["sfew", "--root", str(root / "raw"), "--out", str(root / "out"), "--quiet",
                 "--size", "48", *extra]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return manifest, records


def test_frames_are_labelled_by_folder_with_val_as_test(tmp_path):
    truth = write_sfew(tmp_path / "raw", plant_bad=True)
    manifest, records = _prepare(tmp_path)
    expected = {t["path"]: t for t in truth}
    assert manifest["counts"]["inputs"] == len(truth)
    assert manifest["counts"]["written"] + manifest["counts"]["skipped"] == len(truth)
    for record in records:
        entry = expected[record["image_id"].decode()]
        assert BASIC7[record["expression"]] == entry["expression"]
        assert record["split"].decode() == entry["split"]
    bad = next(t["path"] for t in truth if t["bad"])
    assert any(s["input"] == bad and "truncated" in s["reason"] for s in manifest["skipped"])


def test_aligned_crops_are_used_whole(tmp_path):
    truth = write_sfew(tmp_path / "raw", classes=("Sad",), aligned=True, plant_bad=True)
    manifest, records = _prepare(tmp_path, "--aligned")
    assert manifest["crops"] == {"given": 1}
    assert [r["image_id"].decode() for r in records] == [truth[0]["aligned_path"]]
    assert manifest["skipped"][0]["input"] == truth[1]["aligned_path"]


def write_identities(path, rows):
    path.write_text("image,identity\n" + "".join(f"{i},{s}\n" for i, s in rows))
    return str(path)


def test_identities_csv_labels_every_image_and_keeps_undetected_frames(tmp_path):
    truth = write_sfew(tmp_path / "raw")
    blank = next(t["path"] for t in truth if t["split"] == "test")  # a frame without a face
    cv2.imwrite(str(tmp_path / "raw" / blank), np.full((96, 96, 3), 128, np.uint8))
    subjects = {t["path"]: f"actor{k % 2}" for k, t in enumerate(truth)}
    # one row by relative path, the others by bare file name (unique here)
    rows = [(p if k == 0 else p.rsplit("/", 1)[1], s) for k, (p, s) in enumerate(subjects.items())]
    ids = write_identities(tmp_path / "ids.csv", rows + [("Val/Sad/gone.png", "actor9")])
    manifest, records = _prepare(tmp_path, "--identities", ids, "--undetected", "centre",
                                 "--align", "liu49")
    assert manifest["identities"] == {"actor0": 0, "actor1": 1}
    assert {r["image_id"].decode(): r["identity"] for r in records} == {
        p: int(s[-1]) for p, s in subjects.items()}
    # no landmarks: MTCNN's eyes level the frames (Liu et al.'s fallback); the blank
    # frame keeps its unrotated centre square
    assert manifest["crops"] == {"centre-fallback": 1, "detected+eyeline": len(truth) - 1}
    assert manifest["counts"]["skipped"] == 0
    assert manifest["splits"]["test"] == sum(t["split"] == "test" for t in truth)
    assert any("1 row(s) name no imported image" in w for w in manifest["warnings"])


def test_images_missing_from_the_identities_csv_are_an_error_naming_them(tmp_path, capsys):
    truth = write_sfew(tmp_path / "raw")
    ids = write_identities(tmp_path / "ids.csv", [(truth[0]["path"], "a")])
    assert main(["sfew", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--quiet", "--identities", ids]) == 2
    error = capsys.readouterr().err
    assert f"{len(truth) - 1} of {len(truth)} image(s) have no row in {ids}" in error
    assert truth[1]["path"] in error


def test_the_tuple_sampler_points_sfew_users_at_the_identities_option():
    from fermtl_tf.data.tuple_sampling import missing_identity_message

    assert "fermtl-prep sfew --identities" in missing_identity_message("d", "train", 3, 9)
