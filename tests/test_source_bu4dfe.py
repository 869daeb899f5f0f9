"""bu4dfe importer on a SynthFace fixture in the BU-4DFE layout (MTCNN crops)."""

import os

import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.bu4dfe import write_bu4dfe
from fermtl_tf.knowledge.vocabularies import BASIC6, BASIC7

EXPRESSIONS = ("Angry", "Happy", "Surprise")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("bu4dfe")
    truth = write_bu4dfe(root / "raw", expressions=EXPRESSIONS, frames_per_sequence=3,
                         plant_bad=True)
    # --min-confidence 0.5: two neutral SynthFace frames of M001 score < 0.9 in MTCNN, and
    # this test is about the importer, not the detector
    assert main(["bu4dfe", "--root", str(root / "raw"), "--out", str(root / "out"),
                 "--quiet", "--size", "48", "--min-confidence", "0.5"]) == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def _load(root, *options):
    args = build_parser().parse_args(["bu4dfe", "--root", str(root), "--out",
                                      str(root.parent / "out"), *options])
    return get_source("bu4dfe").load(args)


def test_every_frame_is_an_input_and_the_stray_file_a_named_skip(prepared):
    truth, manifest, records = prepared
    frames = sum(len(t["frames"]) for t in truth)
    counts = manifest["counts"]
    assert counts["inputs"] == frames + 1  # + the stray notes.txt
    assert counts["written"] == len(records) == frames - 1  # - the truncated frame
    bad = next(t for t in truth if t["bad"])
    skipped = {s["where"]: s["reason"] for s in manifest["skipped"]}
    sequence = f"{bad['subject']}/{bad['folder']}"
    assert sorted(skipped) == [f"{sequence}/{bad['bad']}", f"{sequence}/notes.txt"]
    assert "truncated" in skipped[f"{sequence}/{bad['bad']}"]
    assert "not a BU-4DFE frame" in skipped[f"{sequence}/notes.txt"]


def test_labels_identities_and_frame_numbers_follow_the_folders(prepared):
    truth, manifest, records = prepared
    assert manifest["vocabulary_name"] == "basic6"
    assert manifest["identities"] == {"F001": 0, "M001": 1}
    for record in records:
        subject, folder, name = record["image_id"].decode().split("/")
        sequence = next(t for t in truth if (t["subject"], t["folder"]) == (subject, folder))
        assert BASIC6[record["expression"]] == sequence["expression"]
        assert int(record["identity"]) == manifest["identities"][subject]
        assert record["sequence_id"].decode() == f"{subject}_{folder}"
        assert int(record["frame_index"]) == int(name[:3])
        assert int(record["fold"]) == -1 and record["split"].decode() == "unassigned"


def test_3d_files_and_viewer_are_counted_not_read_and_counts_are_compared(prepared):
    truth, manifest, _ = prepared
    info = manifest["source_info"]
    frames = sum(len(t["frames"]) for t in truth)
    assert info["not_read"] == {".wrl": frames, "BU_WrlViewer_V2/": 1}
    assert (info["subjects"], info["sequences"], info["frames"]) == (2, 6, frames)
    assert manifest["warnings"] == [
        f"bu4dfe: read 2 subjects, 6 sequences, {frames} images; FERSNet (Sec. IV-B) "
        f"pre-trained on 101 subjects, 606 sequences, 60600 images"]


def test_frame_selection_classes_and_folds(tmp_path):
    truth = write_bu4dfe(tmp_path / "raw", subjects=("F001", "F002", "M001"),
                         expressions=("Fear", "Sad"), frames_per_sequence=4, image_size=32)
    dataset = _load(tmp_path / "raw", "--frames", "last:2", "--classes", "basic7",
                    "--folds", "3")
    assert dataset.vocabulary == BASIC7
    assert {f.image_id.rsplit("/", 1)[1] for f in dataset.inputs} == {"002.jpg", "003.jpg"}
    assert len(dataset.inputs) == 2 * len(truth)
    by_key = {(t["subject"], t["folder"]): t["expression"] for t in truth}
    for face in dataset.inputs:
        subject, folder, _ = face.image_id.split("/")
        assert BASIC7[face.expression] == by_key[(subject, folder)]
    folds = {}
    for face in dataset.inputs:
        folds.setdefault(face.identity, set()).add(face.fold)
    assert sorted(folds) == [0, 1, 2] and sorted(f for (f,) in folds.values()) == [0, 1, 2]


@pytest.mark.parametrize("folder, expected", [
    ("F001/Contempt", "expression folders"),
    ("S001", "subject folders"),
    ("M001/Happy/extra", "only frame files"),
])
def test_unknown_folder_is_an_error_naming_it(tmp_path, capsys, folder, expected):
    write_bu4dfe(tmp_path / "raw", subjects=("F001", "M001"), expressions=("Happy",),
                 frames_per_sequence=1, image_size=32)
    os.makedirs(tmp_path / "raw" / folder)
    assert main(["bu4dfe", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "raw" / folder) in err and expected in err


def test_root_without_subject_folders_is_an_error(tmp_path, capsys):
    (tmp_path / "raw" / "BU_WrlViewer_V2").mkdir(parents=True)
    assert main(["bu4dfe", "--root", str(tmp_path / "raw"), "--out",
                 str(tmp_path / "out")]) == 2
    assert "no subject folder (F001..., M001...)" in capsys.readouterr().err


def test_empty_sequence_is_a_warning(tmp_path):
    write_bu4dfe(tmp_path / "raw", subjects=("F001",), expressions=("Happy", "Sad"),
                 frames_per_sequence=1, image_size=32)
    for name in os.listdir(tmp_path / "raw" / "F001" / "Sad"):
        os.remove(tmp_path / "raw" / "F001" / "Sad" / name)
    dataset = _load(tmp_path / "raw")
    assert dataset.info["empty_sequences"] == [os.path.join("F001", "Sad")]
    assert any("1 expression folder(s) hold no frame image: F001" in w
               for w in dataset.warnings)
