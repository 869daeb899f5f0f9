"""affectnet importer on a SynthFace fixture in AffectNet's native CSV layout."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources.affectnet import cleaning_violation
from fermtl_tf.data.synthface.layouts.affectnet import VIOLATOR, write_affectnet
from fermtl_tf.knowledge.vocabularies import BASIC7

#: AffectNet codes 0..6 in basic7 names (the dataset's own numbering).
CODES = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")


def read(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    records = [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


def prep(root, out, *extra):
    assert main(["affectnet", "--root", str(root), "--out", str(out), "--quiet",
                 "--size", "64", "--crop-from", "landmarks", *extra]) == 0
    return read(out)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet")
    truth = write_affectnet(root, plant_bad=True)
    return root, truth, prep(root, root / "out")


def test_counts_exclusions_and_the_planted_bad_row(fixture):
    _, truth, (manifest, records) = fixture
    unusable = [n for n, t in truth.items() if t["code"] >= 9]
    counts = manifest["counts"]
    assert counts["inputs"] == len(truth) - len(unusable) == counts["written"] + counts["skipped"]
    assert sum(manifest["source_info"]["excluded"].values()) == len(unusable)
    bad = [n for n, t in truth.items() if t["bad"]]
    assert [s["input"] for s in manifest["skipped"]] == bad
    assert "134 values" in manifest["skipped"][0]["reason"]
    assert "training.csv line 5" in manifest["skipped"][0]["where"]


def test_expressions_valence_arousal_and_splits(fixture):
    _, truth, (_, records) = fixture
    for name, record in records.items():
        code = truth[name]["code"]
        if code <= 6:
            assert (record["expression_mask"], BASIC7[record["expression"]]) == (1, CODES[code])
        else:  # contempt under --classes 7, or 'none': valence/arousal only
            assert record["expression_mask"] == 0
        assert record["va_mask"] == 1
        assert record["valence"] == pytest.approx(truth[name]["valence"], abs=1e-6)
        assert record["arousal"] == pytest.approx(truth[name]["arousal"], abs=1e-6)
        assert record["split"].decode() == truth[name]["split"]


def test_landmarks_keep_the_subjects_right_eye_on_the_image_left(fixture):
    _, _, (_, records) = fixture
    for record in records.values():
        points = record["landmarks"].reshape(68, 2)
        assert points[36:42, 0].mean() < points[42:48, 0].mean()
        assert record["landmarks_mask"] == 1


def test_contempt_is_a_class_with_eight_classes(fixture, tmp_path):
    root, truth, _ = fixture
    _, records = prep(root, tmp_path, "--classes", "8")
    contempt = [n for n, t in truth.items() if t["code"] == 7]
    assert contempt and all(records[n]["expression"] == 7 for n in contempt)


def test_facebehaviornet_cleaning_removes_the_contradicting_image(fixture, tmp_path):
    root, _, (_, records) = fixture
    assert VIOLATOR in records
    manifest, cleaned = prep(root, tmp_path, "--clean", "facebehaviornet")
    assert VIOLATOR not in cleaned
    assert manifest["source_info"]["excluded"]["cleaning rule iv (happy needs positive "
                                               "valence)"] >= 1


@pytest.mark.parametrize("expression, valence, arousal, broken", [
    ("neutral", 0.1, 0.1, None), ("neutral", 0.12, 0.1, "i"), ("sadness", 0.0, 0.3, "ii"),
    ("anger", -0.5, -0.1, "iii"), ("anger", -0.5, 0.1, None), ("happiness", -0.1, 0.0, "iv"),
    ("surprise", -0.9, -0.9, None)])
def test_cleaning_rules_by_hand(expression, valence, arousal, broken):
    rule = cleaning_violation(expression, valence, arousal)
    assert (rule.split()[0] if rule else None) == broken


def test_validation_fraction_comes_from_training_only(fixture, tmp_path):
    root, truth, _ = fixture
    _, records = prep(root, tmp_path, "--val-fraction", "0.5")
    val = [n for n, r in records.items() if r["split"] == b"val"]
    assert val and all(truth[n]["split"] == "train" for n in val)
    assert np.sum([r["split"] == b"test" for r in records.values()]) == sum(
        1 for t in truth.values() if t["split"] == "test" and t["code"] < 9)
