"""oulu_casia importer on a SynthFace fixture in the Oulu-CASIA NIR&VIS layout (MTCNN crops)."""

import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.oulu_casia import write_oulu_casia
from fermtl_tf.knowledge.vocabularies import BASIC6, BASIC7


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("oulu")
    truth = write_oulu_casia(root / "raw", plant_bad=True)
    assert main(["oulu_casia", "--root", str(root / "raw"), "--out", str(root / "out"),
                 "--quiet", "--size", "48"]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def test_counts_are_three_frames_per_sequence(prepared):
    truth, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == 3 * len(truth)
    assert counts["written"] + counts["skipped"] == counts["inputs"]
    assert counts["written"] == len(records)


def test_truncated_frame_is_the_reported_skip(prepared):
    truth, manifest, _ = prepared
    bad = next(t for t in truth if t["bad"])
    reasons = [s["reason"] for s in manifest["skipped"]]
    assert any(f"{bad['subject']}/{bad['folder']}/{bad['bad']}" in r and "truncated" in r
               for r in reasons)


def test_label_is_the_expression_folder_and_frames_are_the_last_three(prepared):
    truth, manifest, records = prepared
    assert manifest["vocabulary_name"] == "basic6"
    for record in records:
        subject, folder, name = record["image_id"].decode().split("/")
        sequence = next(t for t in truth if (t["subject"], t["folder"]) == (subject, folder))
        assert BASIC6[record["expression"]] == sequence["expression"]
        assert name in sequence["frames"][-3:]


def test_no_identity_in_two_folds(prepared):
    _, _, records = prepared
    folds = {}
    for record in records:
        folds.setdefault(int(record["identity"]), set()).add(int(record["fold"]))
    assert sorted(folds) == [1, 2] and all(len(f) == 1 for f in folds.values())


def test_missing_lighting_folder_is_an_error_naming_it(tmp_path, capsys):
    write_oulu_casia(tmp_path / "raw", num_subjects=1, expressions=("Fear",),
                     frames_per_sequence=1)
    assert main(["oulu_casia", "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "o"),
                 "--lighting", "Dark"]) == 2
    assert "OriginalImg/VL/Dark" in capsys.readouterr().err


def test_classes_basic7_writes_the_same_labels_in_the_seven_class_vocabulary(tmp_path):
    truth = write_oulu_casia(tmp_path / "raw", num_subjects=1, frames_per_sequence=3)
    args = build_parser().parse_args(["oulu_casia", "--root", str(tmp_path / "raw"), "--out",
                                      str(tmp_path / "o"), "--classes", "basic7"])
    dataset = get_source("oulu_casia").load(args)
    assert dataset.vocabulary_name == "basic7" and dataset.vocabulary == BASIC7
    by_folder = {t["folder"]: t["expression"] for t in truth}
    assert [BASIC7[f.expression] for f in dataset.inputs] == [
        by_folder[f.image_id.split("/")[1]] for f in dataset.inputs]
    assert dataset.info["other_classes"] == {}
