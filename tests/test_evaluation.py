"""Benchmark registry, SavedModel runner, report files and the fermtl-eval CLI.

The runner is exercised end to end on a tiny dataset written here with the record
schema and a fake SavedModel whose predictions are read back from pixels the test
wrote, so every expected metric is computed independently (scikit-learn / numpy).
"""

import csv
import hashlib
import json
import os
import runpy

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics as skm

from fermtl_tf.cli.evaluate import main as cli_main
from fermtl_tf.data.schema import encode_example
from fermtl_tf.evaluation import benchmarks, report, runner
from fermtl_tf.knowledge.vocabularies import BASIC7

SIZE = 16
DATA_AUS = ["AU1", "AU4", "AU12"]
MODEL_AUS = ["AU12", "AU6", "AU1", "AU4"]  # other order and one AU the data lacks
NUM_TEST, NUM_TRAIN = 30, 6


def _make_labels(rng):
    n = NUM_TEST + NUM_TRAIN
    template = rng.uniform(0.1, 0.9, size=(68, 2))
    expression = rng.integers(0, 7, n)
    return {
        "split": np.array(["test"] * NUM_TEST + ["train"] * NUM_TRAIN),
        "expression": expression,
        "predicted_class": np.where(rng.random(n) < 0.6, expression, rng.integers(0, 7, n)),
        "expression_mask": (rng.random(n) < 0.8).astype(int),
        "template": template,
        "landmarks_px": template * SIZE + rng.normal(0, 0.6, size=(n, 68, 2)),
        "landmarks_mask": (rng.random(n) < 0.7).astype(int),
        "au": (rng.random((n, 3)) < 0.4).astype(np.float32),
        "au_pixels": rng.integers(0, 256, size=(n, 3)),
        "au_mask": (rng.random((n, 3)) < 0.8).astype(np.float32),
        "valence": rng.uniform(-1, 1, n),
        "arousal": rng.uniform(-1, 1, n),
        "va_pixels": rng.integers(0, 256, size=(n, 2)),
        "va_mask": (rng.random(n) < 0.75).astype(int),
    }


def _image(labels, i):
    """Noise image whose first row encodes the fake model's predictions for sample i."""
    image = np.random.default_rng(i).integers(0, 256, size=(SIZE, SIZE, 3)).astype(np.uint8)
    image[0, 0, 0] = labels["predicted_class"][i] * 20
    image[0, 1, :] = labels["au_pixels"][i]
    image[0, 2, :2] = labels["va_pixels"][i]
    return tf.io.encode_png(image).numpy()


def _write_dataset(folder, labels):
    os.makedirs(folder)
    shard = "shard-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(os.path.join(folder, shard)) as writer:
        for i in range(len(labels["split"])):
            record = {
                "image": _image(labels, i),
                "image_id": f"img{i}",
                "split": labels["split"][i],
                "expression": labels["expression"][i],
                "expression_mask": labels["expression_mask"][i],
                "landmarks": labels["landmarks_px"][i],
                "landmarks_mask": labels["landmarks_mask"][i],
                "au": labels["au"][i],
                "au_mask": labels["au_mask"][i],
                "valence": labels["valence"][i],
                "arousal": labels["arousal"][i],
                "va_mask": labels["va_mask"][i],
            }
            writer.write(encode_example(record, num_aus=3, num_attributes=0))
    with open(os.path.join(folder, shard), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    manifest = {
        "source": "test", "image_size": [SIZE, SIZE], "image_format": "png",
        "landmarks_units": "pixels", "normalisation": "none",
        "vocabularies": {"expression": list(BASIC7)}, "au_names": DATA_AUS, "num_aus": 3,
        "attribute_names": [], "num_attributes": 0,
        "splits": {"test": NUM_TEST, "train": NUM_TRAIN},
        "shards": [{"path": shard, "num_records": NUM_TEST + NUM_TRAIN, "sha256": digest}],
    }
    with open(os.path.join(folder, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)


class _PixelDecodingModel(tf.Module):
    """Serves predictions decoded from the first image row (see ``_image``)."""

    def __init__(self, template):
        super().__init__()
        self.template = tf.constant(template, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    def serve(self, images):
        row = images[:, 0]
        n = tf.shape(images)[0]
        au = row[:, 1] / 255.0  # data order AU1, AU4, AU12
        return {
            "expression_probs": tf.one_hot(tf.cast(tf.round(row[:, 0, 0] / 20.0), tf.int32), 7),
            "landmarks": tf.tile(self.template[None], [n, 1, 1]),
            "au_probs": tf.stack([au[:, 2], tf.fill([n], 0.9), au[:, 0], au[:, 1]], axis=1),
            "valence": row[:, 2, 0] / 255.0 * 2.0 - 1.0,
            "arousal": row[:, 2, 1] / 255.0 * 2.0 - 1.0,
        }


def _write_model(folder, template):
    tf.saved_model.save(_PixelDecodingModel(template), folder)
    export = {
        "input_size": [SIZE, SIZE], "normalization": "minus_one_one",
        "outputs": ["expression_probs", "landmarks", "au_probs", "valence", "arousal"],
        "expression_vocabulary": list(BASIC7), "au_names": MODEL_AUS,
    }
    with open(os.path.join(folder, "fermtl_export.json"), "w") as handle:
        json.dump(export, handle)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    labels = _make_labels(np.random.default_rng(42))
    _write_dataset(str(root / "data"), labels)
    _write_model(str(root / "model"), labels["template"])
    results = runner.evaluate_saved_model(
        str(root / "model"), str(root / "data"), out_dir=str(root / "report"), batch_size=8
    )
    test = {key: value[:NUM_TEST] for key, value in labels.items() if key != "template"}
    test["template"] = labels["template"]
    return {"root": root, "test": test, "results": results}


# --- registry -------------------------------------------------------------------------


def test_synthface_entry_lists_every_task_of_the_metrics_contract():
    entry = benchmarks.get_benchmark("synthface")
    assert entry.task_metrics == {
        "expression": ("accuracy", "mean_diagonal", "macro_f1"),
        "landmarks": ("nme_inter_ocular", "nme_inter_pupil"),
        "au": ("au_f1", "au_accuracy"),
        "va": ("ccc_valence", "ccc_arousal"),
    }


def test_get_benchmark_error_lists_known_names():
    with pytest.raises(KeyError, match="raf_ce"):
        benchmarks.get_benchmark("no_such_benchmark")


def test_every_real_benchmark_cites_a_paper():
    entries = benchmarks.BENCHMARKS.values()
    uncited = [b.name for b in entries if not b.synthetic and not b.paper_refs]
    assert uncited == []


def test_benchmark_rejects_a_metric_of_another_task():
    with pytest.raises(ValueError, match="unknown expression metric"):
        benchmarks.Benchmark("x", {"expression": ("ccc_valence",)}, "split", "", ())


# --- runner ---------------------------------------------------------------------------


def _expression(test):
    keep = test["expression_mask"] > 0
    return test["expression"][keep], test["predicted_class"][keep]


def test_runner_counts_only_the_requested_split(setup):
    assert setup["results"]["num_samples"] == NUM_TEST


def test_runner_accuracy_over_labelled_samples(setup):
    y_true, y_pred = _expression(setup["test"])
    expected = skm.accuracy_score(y_true, y_pred)
    assert setup["results"]["metrics"]["accuracy"] == pytest.approx(expected)


def test_runner_mean_diagonal_over_labelled_samples(setup):
    y_true, y_pred = _expression(setup["test"])
    expected = skm.recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro")
    assert setup["results"]["metrics"]["mean_diagonal"] == pytest.approx(expected)


def test_runner_macro_f1_over_the_vocabulary(setup):
    y_true, y_pred = _expression(setup["test"])
    expected = skm.f1_score(y_true, y_pred, labels=range(7), average="macro", zero_division=0)
    assert setup["results"]["metrics"]["macro_f1"] == pytest.approx(expected)


def test_runner_confusion_matrix(setup):
    y_true, y_pred = _expression(setup["test"])
    expected = skm.confusion_matrix(y_true, y_pred, labels=range(7))
    np.testing.assert_array_equal(setup["results"]["confusion_matrix"], expected)


def test_runner_per_class_accuracy_is_each_true_class_recall(setup):
    y_true, y_pred = _expression(setup["test"])
    per_class = setup["results"]["per_class_accuracy"]
    assert list(per_class) == list(BASIC7)
    for index, name in enumerate(BASIC7):
        chosen = y_true == index
        if chosen.any():
            assert per_class[name] == pytest.approx(np.mean(y_pred[chosen] == index))
        else:
            assert np.isnan(per_class[name])


@pytest.mark.parametrize(
    "metric, corners", [("nme_inter_ocular", "outer"), ("nme_inter_pupil", "centres")]
)
def test_runner_nme_over_labelled_samples(setup, metric, corners):
    test = setup["test"]
    keep = test["landmarks_mask"] > 0
    true = test["landmarks_px"][keep]
    pred = test["template"] * SIZE
    if corners == "outer":
        eye_distance = np.linalg.norm(true[:, 36] - true[:, 45], axis=1)
    else:
        eye_distance = np.linalg.norm(true[:, 36:42].mean(1) - true[:, 42:48].mean(1), axis=1)
    per_image = np.sqrt(((pred - true) ** 2).sum(-1)).mean(1) / eye_distance * 100
    assert setup["results"]["metrics"][metric] == pytest.approx(per_image.mean(), rel=1e-5)


def test_runner_matches_aus_by_name(setup):
    test = setup["test"]
    scores = []
    for k in range(3):
        keep = test["au_mask"][:, k] > 0
        predicted = (test["au_pixels"][keep, k] / 255.0 >= 0.5).astype(int)
        scores.append(skm.f1_score(test["au"][keep, k], predicted, zero_division=0))
    assert setup["results"]["au_evaluated"] == DATA_AUS
    assert setup["results"]["metrics"]["au_f1"] == pytest.approx(np.mean(scores))


@pytest.mark.parametrize("dimension, column", [("valence", 0), ("arousal", 1)])
def test_runner_ccc_over_labelled_samples(setup, dimension, column):
    test = setup["test"]
    keep = test["va_mask"] > 0
    x = test[dimension][keep]
    y = test["va_pixels"][keep, column] / 255.0 * 2 - 1
    expected = 2 * np.mean((x - x.mean()) * (y - y.mean())) / (
        x.var() + y.var() + (x.mean() - y.mean()) ** 2
    )
    assert setup["results"]["metrics"][f"ccc_{dimension}"] == pytest.approx(expected, abs=1e-5)


def test_missing_output_is_listed_as_skipped_not_dropped():
    bench = benchmarks.get_benchmark("aff_wild")
    labels = {"va_mask": np.ones(3), "valence": np.zeros(3), "arousal": np.zeros(3)}
    results = runner.compute_metrics(bench, {}, labels, {}, {})
    assert results["metrics"] == {}
    assert results["skipped"] == {
        "ccc_valence": "model has no 'valence' output",
        "ccc_arousal": "model has no 'valence' output",
    }


def test_vocabulary_mismatch_is_an_error():
    bench = benchmarks.get_benchmark("raf_ce")
    outputs = {"expression_probs": np.eye(2)}
    labels = {"expression": np.array([0, 1]), "expression_mask": np.ones(2)}
    manifest = {"vocabularies": {"expression": ["a", "b"]}}
    export = {"expression_vocabulary": ["b", "a"]}
    with pytest.raises(runner.EvaluationInputError, match="vocabulary"):
        runner.compute_metrics(bench, outputs, labels, export, manifest)


def test_evaluate_folds_mean_and_population_std():
    folds = [{"metrics": {"accuracy": 0.5}}, {"accuracy": 0.7}, {"accuracy": 0.9}]
    aggregated = runner.evaluate_folds(folds)["accuracy"]
    assert aggregated["per_fold"] == [0.5, 0.7, 0.9]
    assert aggregated["mean"] == pytest.approx(0.7)
    assert aggregated["std"] == pytest.approx(np.sqrt((0.04 + 0 + 0.04) / 3))


def test_evaluate_folds_names_the_fold_missing_a_metric():
    with pytest.raises(ValueError, match=r"fold\(s\) \[1\]"):
        runner.evaluate_folds([{"accuracy": 0.5, "uar": 0.4}, {"accuracy": 0.6}])


# --- report ---------------------------------------------------------------------------


def test_report_json_holds_the_metrics(setup):
    with open(setup["root"] / "report" / "results.json") as handle:
        saved = json.load(handle)
    assert saved["metrics"] == pytest.approx(setup["results"]["metrics"])


def test_report_csv_has_one_row_per_metric(setup):
    with open(setup["root"] / "report" / "results.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["metric", "value"]
    values = {name: float(value) for name, value in rows[1:]}
    assert values == pytest.approx(setup["results"]["metrics"])


def test_report_markdown_says_synthface_is_synthetic(setup):
    text = (setup["root"] / "report" / "results.md").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# SynthFace (synthetic) — not a real-face result"
    assert "| accuracy |" in text


def test_report_markdown_and_json_list_the_accuracy_of_every_class(setup):
    text = (setup["root"] / "report" / "results.md").read_text(encoding="utf-8")
    saved = json.loads((setup["root"] / "report" / "results.json").read_text())
    y_true, y_pred = _expression(setup["test"])
    assert "| class | accuracy | samples |" in text
    for index, name in enumerate(BASIC7):
        count = int(np.sum(y_true == index))
        value = saved["per_class_accuracy"][name]
        if count:
            assert value == pytest.approx(np.mean(y_pred[y_true == index] == index))
            assert f"| {name} | {value:.4f} | {count} |" in text
        else:
            assert value is None and f"| {name} | n/a | 0 |" in text


def test_report_writes_a_png_confusion_matrix(setup):
    with open(setup["root"] / "report" / "confusion_matrix.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_to_builtin_makes_numpy_values_json_serialisable():
    value = {"a": np.float32(0.5), "b": np.arange(2), "c": [np.int64(3)], "d": float("nan")}
    assert json.loads(json.dumps(report.to_builtin(value), allow_nan=False)) == {
        "a": 0.5, "b": [0, 1], "c": [3], "d": None,
    }


# --- CLI ------------------------------------------------------------------------------


def test_cli_missing_model_dir_exits_2_naming_the_path(tmp_path, capsys):
    missing = str(tmp_path / "nope")
    assert cli_main(["--model", missing, "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"fermtl-eval: error: model directory not found: {missing}"


def test_cli_model_dir_without_export_metadata_exits_2(tmp_path, capsys):
    assert cli_main(["--model", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert str(tmp_path / "fermtl_export.json") in capsys.readouterr().err


def test_cli_data_dir_without_manifest_exits_2(setup, tmp_path, capsys):
    model = str(setup["root"] / "model")
    assert cli_main(["--model", model, "--data", str(tmp_path)]) == 2
    assert str(tmp_path / "manifest.json") in capsys.readouterr().err


def test_cli_unknown_split_exits_2_listing_the_splits(setup, capsys):
    root = setup["root"]
    argv = ["--model", str(root / "model"), "--data", str(root / "data"), "--split", "val"]
    assert cli_main(argv) == 2
    assert "(splits: ['test', 'train'])" in capsys.readouterr().err


def test_cli_prints_the_markdown_table(setup, capsys):
    root = setup["root"]
    argv = ["--model", str(root / "model"), "--data", str(root / "data"), "--batch-size", "16"]
    assert cli_main(argv) == 0
    assert "| ccc_valence |" in capsys.readouterr().out


def test_evaluate_script_runs_the_cli(monkeypatch, capsys):
    script = os.path.join(os.path.dirname(__file__), "..", "evaluate", "evaluate.py")
    monkeypatch.setattr("sys.argv", ["evaluate.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 0
    assert "fermtl-eval" in capsys.readouterr().out


def test_smooth_by_sequence_takes_the_median_within_each_video_in_frame_order():
    # Two videos, rows shuffled; window 3 truncated at the ends. Worked by hand:
    # video a, frames 0..3 -> values 1, 9, 2, 4 -> medians (1,9)=5, (1,9,2)=2, (9,2,4)=4, (2,4)=3
    # video b, frames 0..1 -> values 7, 3 -> medians (7,3)=5, (7,3)=5
    labels = {"sequence_id": np.array(["a", "b", "a", "a", "b", "a"]),
              "frame_index": np.array([2, 1, 0, 3, 0, 1])}
    outputs = {"valence": np.array([2.0, 3.0, 1.0, 4.0, 7.0, 9.0])}
    smoothed = runner.smooth_by_sequence(outputs, labels, window=3)
    np.testing.assert_allclose(smoothed["valence"], [4.0, 5.0, 5.0, 3.0, 5.0, 2.0])


def test_smooth_by_sequence_needs_sequence_labels():
    with pytest.raises(runner.EvaluationInputError, match="sequence_id"):
        runner.smooth_by_sequence({"valence": np.zeros(2)}, {}, window=3)


def test_cli_rejects_an_even_median_window(setup, capsys):
    with pytest.raises(SystemExit):
        cli_main(["--model", "m", "--data", "d", "--median-window", "4"])
    assert "--median-window" in capsys.readouterr().err
