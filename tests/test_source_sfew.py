"""sfew importer on SynthFace fixtures in the SFEW 2.0 layout (frames with MTCNN; aligned)."""

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
