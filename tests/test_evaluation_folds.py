"""Fold selection, sequence voting and the k-fold report of the evaluation runner and CLI.

A cross-validation dataset is written as the CK+ importer would (no split, folds, three
frames per sequence) with a fake SavedModel whose expression probabilities are read
from pixels the test wrote; every expected figure is recomputed here with numpy.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.cli.evaluate import main as cli_main
from fermtl_tf.data.schema import encode_example
from fermtl_tf.evaluation import runner
from fermtl_tf.evaluation.sequences import vote_by_sequence
from fermtl_tf.knowledge.vocabularies import CKPLUS7

SIZE, CLASSES, FOLDS, FRAMES = 8, len(CKPLUS7), 3, 3


def numpy_vote(probs, sequence_ids, mode):
    """Reference: per sequence (first-appearance order) the max or mean over its frames."""
    groups = {}
    for row, name in enumerate(sequence_ids):
        groups.setdefault(name or f"row{row}", []).append(row)
    reduce = np.max if mode == "max" else np.mean
    return np.array([reduce(probs[rows], axis=0) for rows in groups.values()])


# --- vote_by_sequence on hand-made probabilities --------------------------------------


def test_max_and_mean_votes_differ_as_worked_by_hand():
    # sequence a: max over frames [0.8, 0.6, 0.3] -> class 0; mean [1/3, 7/15, 0.2] -> class 1
    probs = np.array([[0.8, 0.2, 0.0], [0.1, 0.6, 0.3], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])
    ids = ["a", "a", "a", "b"]
    scores, labels, names = vote_by_sequence(probs, [1, 1, 1, 2], ids, "max")
    np.testing.assert_allclose(scores, [[0.8, 0.6, 0.3], [0.2, 0.3, 0.5]])
    assert np.argmax(scores, -1).tolist() == [0, 2] and labels.tolist() == [1, 2]
    assert names == ["a", "b"]
    scores, _, _ = vote_by_sequence(probs, [1, 1, 1, 2], ids, "mean")
    np.testing.assert_allclose(scores, [[1 / 3, 7 / 15, 0.2], [0.2, 0.3, 0.5]])
    assert np.argmax(scores, -1).tolist() == [1, 2]


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_vote_matches_numpy_on_shuffled_frames_and_still_images(mode):
    rng = np.random.default_rng(3)
    ids = ["s2", "", "s1", "s2", "s1", "", "s2", "s3"]
    probs = rng.dirichlet(np.ones(4), size=len(ids))
    label_of = {"s1": 0, "s2": 3, "s3": 1}
    y_true = [label_of.get(name, 2) for name in ids]
    scores, labels, names = vote_by_sequence(probs, y_true, ids, mode)
    np.testing.assert_allclose(scores, numpy_vote(probs, ids, mode))
    assert names == ["s2", "#frame1", "s1", "#frame5", "s3"]
    assert labels.tolist() == [3, 2, 0, 2, 1]


def test_frames_of_one_sequence_with_different_labels_are_an_error():
    with pytest.raises(ValueError, match="sequence 'a'"):
        vote_by_sequence(np.ones((2, 2)), [0, 1], ["a", "a"], "max")


def test_unknown_vote_is_an_error():
    with pytest.raises(ValueError, match="median"):
        vote_by_sequence(np.ones((1, 2)), [0], ["a"], "median")


# --- runner and CLI on a cross-validation dataset -------------------------------------


def _truth(rng):
    """Six subjects, two sequences each, three frames; subject s is in fold s % 3."""
    rows = []
    for subject in range(6):
        for sequence in range(2):
            label = int(rng.integers(CLASSES))
            for frame in range(FRAMES):
                pixels = rng.integers(0, 200, CLASSES)
                if rng.random() < 0.5:  # a frame that leans to the true class
                    pixels[label] = rng.integers(120, 256)
                rows.append({"sequence_id": f"S{subject}_{sequence}", "fold": subject % FOLDS,
                             "expression": label, "frame_index": frame, "pixels": pixels})
    return rows


def _write_dataset(folder, rows):
    os.makedirs(folder)
    with tf.io.TFRecordWriter(os.path.join(folder, "shard-0.tfrecord")) as writer:
        for i, row in enumerate(rows):
            image = np.zeros((SIZE, SIZE, 3), np.uint8)
            image[0, :CLASSES, 0] = row["pixels"]
            record = {"image": tf.io.encode_png(image).numpy(), "image_id": f"img{i}",
                      "split": "", "expression_mask": 1,
                      **{k: row[k] for k in ("sequence_id", "fold", "expression",
                                             "frame_index")}}
            writer.write(encode_example(record, num_aus=0, num_attributes=0))
    folds = {str(f): sum(r["fold"] == f for r in rows) for f in range(FOLDS)}
    manifest = {"image_size": [SIZE, SIZE], "au_names": [], "num_aus": 0,
                "num_attributes": 0, "vocabularies": {"expression": list(CKPLUS7)},
                "splits": {"unassigned": len(rows)}, "folds": folds,
                "shards": [{"path": "shard-0.tfrecord", "num_records": len(rows)}]}
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)


class _PixelProbabilities(tf.Module):
    """Serves the first image row's red values / 255 as the expression probabilities."""

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    def serve(self, images):
        return {"expression_probs": images[:, 0, :CLASSES, 0] / 255.0}


def _write_model(folder):
    tf.saved_model.save(_PixelProbabilities(), folder)
    export = {"input_size": [SIZE, SIZE], "outputs": ["expression_probs"],
              "expression_vocabulary": list(CKPLUS7)}
    with open(os.path.join(folder, "fermtl_export.json"), "w") as handle:
        json.dump(export, handle)


@pytest.fixture(scope="module")
def cv(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    rows = _truth(np.random.default_rng(1))  # fold 1: 0.33 per frame, 0.25 max, 0.75 mean
    _write_dataset(str(root / "data"), rows)
    _write_model(str(root / "model0"))
    for fold in range(1, FOLDS):  # the same model for every fold: copies are enough
        shutil.copytree(root / "model0", root / f"model{fold}")
    return root, rows


def expected_accuracy(rows, folds, vote=None):
    rows = [r for r in rows if r["fold"] in folds]
    probs = np.array([r["pixels"] for r in rows], np.float64) / 255.0
    labels = np.array([r["expression"] for r in rows])
    if vote is None:
        return float(np.mean(np.argmax(probs, -1) == labels))
    ids = [r["sequence_id"] for r in rows]
    scores = numpy_vote(probs, ids, vote)
    first = [ids.index(name) for name in dict.fromkeys(ids)]
    return float(np.mean(np.argmax(scores, -1) == labels[first]))


@pytest.mark.parametrize("vote", [None, "max", "mean"])
def test_runner_scores_one_fold_per_frame_or_per_sequence(cv, vote):
    root, rows = cv
    results = runner.evaluate_saved_model(
        str(root / "model0"), str(root / "data"), benchmark="ck+", split="unassigned",
        folds=[1], batch_size=5, sequence_vote=vote)
    frames = sum(r["fold"] == 1 for r in rows)
    assert results["num_samples"] == frames
    assert results["samples_per_task"]["expression"] == (frames if vote is None
                                                         else frames // FRAMES)
    assert results["metrics"]["accuracy"] == pytest.approx(expected_accuracy(rows, {1}, vote))


def test_runner_exclude_folds_keeps_the_other_folds(cv):
    root, rows = cv
    results = runner.evaluate_saved_model(str(root / "model0"), str(root / "data"),
                                          benchmark="ck+", split=None, exclude_folds=[0])
    assert results["num_samples"] == sum(r["fold"] != 0 for r in rows)
    assert results["metrics"]["accuracy"] == pytest.approx(expected_accuracy(rows, {1, 2}))


def test_fold_models_report_mean_and_sd_over_folds(cv, tmp_path):
    root, rows = cv
    summary = runner.evaluate_fold_models(
        {fold: str(root / f"model{fold}") for fold in range(FOLDS)}, str(root / "data"),
        benchmark="ck+", out_dir=str(tmp_path), sequence_vote="max")
    per_fold = [expected_accuracy(rows, {fold}, "max") for fold in range(FOLDS)]
    accuracy = summary["aggregate"]["accuracy"]
    np.testing.assert_allclose(accuracy["per_fold"], per_fold)
    assert accuracy["mean"] == pytest.approx(np.mean(per_fold))
    assert accuracy["std"] == pytest.approx(np.std(per_fold))
    markdown = (tmp_path / "folds.md").read_text()
    assert f"| accuracy | {np.mean(per_fold):.4f} | {np.std(per_fold):.4f} |" in markdown
    assert json.loads((tmp_path / "folds.json").read_text())["folds"] == [0, 1, 2]
    assert all((tmp_path / f"fold_{fold}" / "results.json").is_file() for fold in range(FOLDS))


def test_cli_evaluates_every_fold_with_its_model(cv, capsys):
    root, rows = cv
    argv = ["--model", str(root / "model{fold}"), "--data", str(root / "data"),
            "--benchmark", "ck+", "--folds", "all", "--sequence-vote", "mean"]
    assert cli_main(argv) == 0
    per_fold = [expected_accuracy(rows, {fold}, "mean") for fold in range(FOLDS)]
    out = capsys.readouterr().out
    assert "3 folds" in out and "`mean`" in out
    assert f"| accuracy | {np.mean(per_fold):.4f} |" in out


def test_cli_folds_without_split_select_every_split(cv, capsys):
    root, rows = cv
    argv = ["--model", str(root / "model0"), "--data", str(root / "data"),
            "--benchmark", "ck+", "--folds", "0,2"]
    assert cli_main(argv) == 0
    count = sum(r["fold"] in (0, 2) for r in rows)
    assert f"all splits, folds [0, 2], {count} samples" in capsys.readouterr().out


def test_cli_training_split_on_a_cross_validation_dataset_exits_2_with_a_hint(cv, capsys):
    root, _ = cv
    argv = ["--model", str(root / "model0"), "--data", str(root / "data"), "--split", "train"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "splits: ['unassigned']; folds: [0, 1, 2]" in err and "folds / exclude_folds" in err


@pytest.mark.parametrize("argv, message", [
    (["--folds", "all"], "{fold} in --model"),
    (["--folds", "1,x"], "fold numbers"),
])
def test_cli_rejects_bad_fold_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli_main(["--model", "m", "--data", "d", *argv])
    assert message in capsys.readouterr().err
