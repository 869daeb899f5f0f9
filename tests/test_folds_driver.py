"""k-fold driver: round configs from fold_roles, and `fermtl-train --folds` end to end."""

import json

import numpy as np
import pytest
import yaml

from fermtl_tf.cli.prep import main as prep_main
from fermtl_tf.cli.train import main as train_main
from fermtl_tf.errors import ConfigError
from fermtl_tf.experiments.config import parse_config
from fermtl_tf.experiments.folds import parse_fold_selection, round_config

RAW = {
    "output_dir": "runs/cv", "method": {"name": "baseline"},
    "data": {"train": [{"folder": "data", "split": None, "batch_size": 4,
                        "augment": {"flip": True}}], "image_size": [32, 32]},
    "backbone": {"depth": 18, "width": 4, "stem": "compact"},
    "tasks": {"expression": {}}, "epochs": 1,
}


def test_round_config_trains_on_the_other_folds_and_validates_on_the_next():
    config = parse_config({**RAW, "cross_validation": {"val_folds": 1}})
    run = round_config(config, 3, [0, 1, 2, 3, 5], "runs/cv/fold_3")
    assert run.data.train[0].folds == [0, 1, 2]  # 5 validates (the fold after 3)
    assert run.data.validation[0].folds == [5] and run.data.validation[0].augment is None
    assert run.output_dir == "runs/cv/fold_3" and config.data.train[0].folds is None


def test_plain_k_fold_has_no_validation_sources():
    run = round_config(parse_config(RAW), 0, [0, 1, 2], "x")
    assert run.data.train[0].folds == [1, 2] and run.data.validation == []


def test_fold_selection_names_the_available_folds():
    assert parse_fold_selection("all", [0, 1, 2]) == [0, 1, 2]
    assert parse_fold_selection("2,0", [0, 1, 2]) == [2, 0]
    with pytest.raises(ConfigError, match=r"not among the data's folds \[0, 1, 2\]"):
        parse_fold_selection("7", [0, 1, 2])


def test_split_accepts_a_list_or_null():
    raw = {**RAW, "data": {"train": [{"folder": "d", "split": ["train", "val"]}]}}
    assert parse_config(raw).data.train[0].split == ["train", "val"]
    raw["data"]["train"][0]["split"] = 3
    with pytest.raises(ConfigError, match="'data.train\\[0\\].split'"):
        parse_config(raw)


def fold_accuracy(export_dir, data, fold):
    """Expression accuracy of the SavedModel on fold ``fold``, computed here with numpy."""
    import tensorflow as tf

    from fermtl_tf.data.pipeline import make_dataset

    loaded = tf.saved_model.load(str(export_dir))
    correct = []
    for batch in make_dataset(data, split=None, folds=[fold], batch_size=16, image_size=(32, 32),
                              training=False, normalization="none"):
        probs = loaded.serve(batch["image"])["expression_probs"].numpy()
        correct += list(np.argmax(probs, axis=1) == batch["expression"].numpy())
    return float(np.mean(correct))


@pytest.mark.slow
def test_fermtl_train_folds_runs_every_round_and_reports_mean_and_sd(tmp_path, capsys):
    data = tmp_path / "data"
    assert prep_main(["synthface", "--out", str(data), "--identities", "6",
                      "--sequences-per-identity", "2", "--frames-per-sequence", "2",
                      "--crop-from", "landmarks", "--size", "32", "--folds", "3",
                      "--quiet"]) == 0
    raw = {**RAW, "output_dir": str(tmp_path / "cv"),
           "data": {**RAW["data"], "train": [{**RAW["data"]["train"][0], "folder": str(data)}]}}
    (tmp_path / "cv.yaml").write_text(yaml.safe_dump(raw))
    assert train_main([str(tmp_path / "cv.yaml"), "--folds", "0,2", "--verbose", "0"]) == 0
    summary = json.loads((tmp_path / "cv" / "folds" / "folds.json").read_text())
    assert summary["folds"] == [0, 2]
    assert (tmp_path / "cv" / "fold_0" / "export").is_dir()
    counts = json.loads((data / "manifest.json").read_text())["folds"]
    accuracies = []
    for fold, result in zip([0, 2], summary["per_fold"], strict=True):
        assert result["num_samples"] == counts[str(fold)]
        accuracies.append(fold_accuracy(tmp_path / "cv" / f"fold_{fold}" / "export", data, fold))
        assert result["metrics"]["accuracy"] == pytest.approx(accuracies[-1])
    aggregate = summary["aggregate"]["accuracy"]
    assert aggregate["mean"] == pytest.approx(np.mean(accuracies))
    assert aggregate["std"] == pytest.approx(np.std(accuracies))
    assert "accuracy" in capsys.readouterr().out
