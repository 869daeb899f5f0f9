"""Zhao et al. Table V (FERSNet §IV-C) in fermtl-report: the synthetic-accuracy results of
``train/fersnet_table5.py`` (per fold, real data) and of the SynthFace study fill the
"Ours" row, and never mix with the ordinary ``accuracy`` of Tables II-IV and VI.

The models are fakes exported as SavedModels: a "generator" that paints every pixel of a
synthesis with ``mapping[target]`` and a "classifier" that predicts the class painted at
pixel (0, 0). A synthesis is then recognised as its target exactly when
``mapping[target] == target``, whatever the source face, so each expected accuracy is
the share of fixed points of the mapping, counted here with numpy.
"""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from fermtl_tf.cli.report import build_report
from fermtl_tf.data.schema import encode_example
from fermtl_tf.evaluation.reproduction import config_name
from fermtl_tf.evaluation.synthetic_accuracy import METRIC, RESULTS_FILE

ROOT = Path(__file__).resolve().parents[1]
SIZE, CLASSES, FACES = 8, ["anger", "happiness", "surprise"], 4
#: generator mappings (target -> painted class) and the fixed-point share each scores
CKPLUS_FOLD0, CKPLUS_FOLD1 = [0, 1, 1], [1, 1, 1]        # 2/3 and 1/3 of the targets
STUDY_FERSNET, STUDY_WO_CONVFLU = [2, 1, 0], [0, 1, 2]   # 1/3 and 3/3


def _accuracy(mapping):
    """Share of targets a mapping keeps: each face is synthesised with every target."""
    return float(np.mean(np.asarray(mapping) == np.arange(len(CLASSES))))


def _load(script):
    spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / "train" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_data(folder):
    """FACES test faces of random pixels and labels (the fakes ignore both)."""
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    with tf.io.TFRecordWriter(os.path.join(folder, "shard-0.tfrecord")) as writer:
        for i in range(FACES):
            image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            writer.write(encode_example(
                {"image": tf.io.encode_png(image).numpy(), "image_id": f"img{i}",
                 "split": "test", "expression": int(rng.integers(len(CLASSES))),
                 "expression_mask": 1}, num_aus=0, num_attributes=0))
    manifest = {"image_size": [SIZE, SIZE], "au_names": [], "num_aus": 0,
                "num_attributes": 0, "vocabularies": {"expression": CLASSES},
                "splits": {"test": FACES},
                "shards": [{"path": "shard-0.tfrecord", "num_records": FACES}]}
    Path(folder, "manifest.json").write_text(json.dumps(manifest))


class _Generator(tf.Module):
    """Paints every pixel of the synthesis for ``target`` with ``mapping[target]``."""

    def __init__(self, mapping):
        super().__init__()
        self.mapping = tf.Variable(np.asarray(mapping, np.float32), trainable=False)

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    def serve(self, images):
        return {"expression_probs": tf.zeros([tf.shape(images)[0], len(CLASSES)])}

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def synthesize(self, images, target_expression):
        painted = tf.gather(self.mapping, target_expression)[:, None, None, None]
        return {"images": painted * tf.ones_like(images)}


class _Classifier(tf.Module):
    """Predicts the class whose index is painted at pixel (0, 0) of the red channel."""

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32)])
    def serve(self, images):
        painted = tf.cast(tf.round(images[:, 0, 0, 0]), tf.int32)
        return {"expression_probs": tf.one_hot(painted, len(CLASSES))}


def _export(module, folder, outputs):
    tf.saved_model.save(module, str(folder))
    Path(folder, "fermtl_export.json").write_text(json.dumps(
        {"input_size": [SIZE, SIZE], "outputs": outputs, "expression_vocabulary": CLASSES}))
    return folder


def _run(folder, config):
    """A training run folder as fermtl-train leaves it: config.yaml naming the config."""
    os.makedirs(folder, exist_ok=True)
    Path(folder, "config.yaml").write_text(f"name: {config_name(ROOT / config)}\n")
    return folder


def _accuracy_results(folder, benchmark, accuracy):
    """An ordinary fermtl-eval results.json (the run's accuracy on real or SynthFace faces)."""
    os.makedirs(folder, exist_ok=True)
    Path(folder, "results.json").write_text(json.dumps(
        {"benchmark": benchmark, "split": "test", "synthetic": benchmark == "synthface",
         "metrics": {"accuracy": accuracy}}))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("table5")
    data = tmp / "data"
    _write_data(str(data))
    classifier = _export(_Classifier(), tmp / "classifier", ["expression_probs"])
    runs = tmp / "runs"
    # real data: two folds of FERSNet on CK+, each scored by train/fersnet_table5.py
    table5 = _load("fersnet_table5.py")
    for fold, mapping in enumerate((CKPLUS_FOLD0, CKPLUS_FOLD1)):
        run = _run(runs / "fersnet" / "ckplus" / f"fold_{fold}", "train/configs/fersnet/ckplus.yaml")
        _export(_Generator(mapping), run / "export", ["expression_probs"])
        assert table5.main(["--classifier", str(classifier), "--generator", str(run / "export"),
                            "--data", str(data), "--benchmark", "ck+"]) == 0
        _accuracy_results(run / "eval", "ck+", 0.90)
    # SynthFace: the study's table_v on its run layout (w/o MTL seed 0 is the classifier)
    study = tmp / "runs" / "studies" / "fersnet"
    shutil.copytree(classifier, study / "wo_mtl" / "seed0" / "export")
    for generator, mapping, config in (
            ("fersnet", STUDY_FERSNET, "synthface_fersnet.yaml"),
            ("wo_convflu", STUDY_WO_CONVFLU, "synthface_wo_convflu.yaml")):
        run = _run(study / generator / "seed0", f"train/configs/fersnet/{config}")
        _export(_Generator(mapping), run / "export", ["expression_probs"])
        _accuracy_results(run / "eval" / "synthface_test", "synthface", 0.80)
    studied = _load("fersnet_synthface_study.py").table_v([0], study, data)
    references = tmp / "references"  # Zhao's file alone: the other papers' configs cost time
    references.mkdir()
    shutil.copy(ROOT / "evaluate" / "references" / "fersnet.yaml", references)
    cells, _, unmatched = build_report(str(references), str(runs), root=str(ROOT))
    return cells, unmatched, runs, studied


def _cell(cells, table, method, column):
    match = cells[(cells["table"] == table) & (cells["method"] == method)
                  & (cells["column"] == column)]
    assert len(match) == 1, (table, method, column)
    return match.iloc[0]


def test_table5_writes_both_files_into_the_generator_runs_eval_folder(report):
    _, unmatched, runs, studied = report
    out = runs / "fersnet" / "ckplus" / "fold_0" / "eval" / "table_v"
    full = json.loads((out / RESULTS_FILE).read_text())
    assert full["accuracy"] == pytest.approx(_accuracy(CKPLUS_FOLD0))
    assert full["num_samples"] == FACES * len(CLASSES)
    filed = json.loads((out / "results.json").read_text())
    assert filed["benchmark"] == "ck+" and filed["split"] == "test"
    assert filed["synthetic"] is False and filed["metrics"] == {METRIC: full["accuracy"]}
    assert "confusion_matrix" not in filed  # would be read as real-face class accuracies
    assert studied["fersnet"][0]["accuracy"] == pytest.approx(_accuracy(STUDY_FERSNET))
    assert unmatched == []


def test_table5_ours_row_holds_the_fold_mean_and_the_studys_synthface_value(report):
    cells = report[0]
    ckplus = _cell(cells, "Table V", "Ours", "CK+")
    assert ckplus["status"] == "config"
    assert ckplus["ours"] == pytest.approx(
        100 * np.mean([_accuracy(CKPLUS_FOLD0), _accuracy(CKPLUS_FOLD1)]))  # 50 %
    assert ckplus["runs"] == 2
    assert ckplus["difference"] == pytest.approx(ckplus["ours"] - 97.04)
    oulu = _cell(cells, "Table V", "Ours", "Oulu-CASIA")
    assert np.isnan(oulu["ours"]) and oulu["runs"] == 0  # no Oulu-CASIA run here
    for cell in (ckplus, oulu):  # the FERSNet generator's, not w/o ConvFLU's 100 %
        assert cell["synthface"] == pytest.approx(100 * _accuracy(STUDY_FERSNET))


def test_ordinary_accuracy_and_synthetic_accuracy_stay_in_their_tables(report):
    cells = report[0]
    # the FERSNet runs' real-face accuracy 90 % / SynthFace 80 % are not Table V's
    table5 = cells[cells["table"] == "Table V"]
    assert not np.isclose(table5["ours"].dropna(), 90.0).any()
    assert not np.isclose(table5["synthface"].dropna(), 80.0).any()
    # ... and Tables II / VI show them, not the synthetic accuracies
    assert _cell(cells, "Table II", "FERSNet (Pre-train: ✗; Setting: Single image)",
                 "Accuracy (%)")["ours"] == pytest.approx(90.0)
    original = _cell(cells, "Table VI", "FERSNet (original)", "CK+")
    assert original["ours"] == pytest.approx(90.0) and original["synthface"] == pytest.approx(80.0)
    assert _cell(cells, "Table VI", "FERSNet w/o ConvFLU", "CK+")["synthface"] \
        == pytest.approx(80.0)


def test_study_files_results_json_for_a_result_cached_before_it_existed(report):
    _, _, runs, _ = report
    out = runs / "studies" / "fersnet" / "wo_convflu" / "seed0" / "eval" / "table_v"
    (out / "results.json").unlink()
    cached = json.loads((out / RESULTS_FILE).read_text())
    cached["accuracy"] = 0.25  # proves the file is rewritten from the cache, not recomputed
    (out / RESULTS_FILE).write_text(json.dumps(cached))
    _load("fersnet_synthface_study.py").table_v([0], runs / "studies" / "fersnet", "unused")
    filed = json.loads((out / "results.json").read_text())
    assert filed["metrics"] == {METRIC: 0.25}
    assert filed["benchmark"] == "synthface" and filed["synthetic"] is True
