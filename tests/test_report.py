"""fermtl-report on a fake runs folder, against a table worked out by hand.

The runs folder holds hand-made results.json files (three folds of one config, an
evaluation on another split that must not be averaged in, a median-filtered and a raw
evaluation, a SynthFace run, a result with no config above it) and a reference file
with a row never run, a row marked not reproducible and a pending row. Every expected
number below is computed in the comment beside it from the values written here.
"""

import json
import math
import os

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from fermtl_tf.cli.report import build_report, main
from fermtl_tf.evaluation import benchmarks, reproduction, runner

REFERENCE = """
paper: demo_paper
title: A demo paper
citation: Demo et al.
tables:
  - table: "1"
    caption: Accuracy in percent
    units: percent
    protocol: 3-fold
    columns:
      - {key: acc, header: "Acc (%)", benchmark: ck+, metric: accuracy}
    rows:
      - {method: Ours, values: {acc: 80.0}, config: train/configs/a.yaml, synthface_config: train/configs/s.yaml}
      - {method: Baseline, values: {acc: 70.0}, config: train/configs/c.yaml}
      - {method: Handcrafted, values: {acc: 50.0}, not_reproducible: handcrafted features}
      - {method: Future, values: {acc: 60.0}, pending: "config (issue 99)"}
  - table: "2"
    caption: CCC as fractions
    units: fraction
    protocol: split
    columns:
      - {key: v, header: CCC-V, benchmark: aff_wild, metric: ccc_valence, median_filtered: true}
      - {key: v_raw, header: CCC-V raw, benchmark: aff_wild, metric: ccc_valence}
    rows:
      - {method: Ours, values: {v: 0.50, v_raw: 0.45}, bold: [v], config: train/configs/b.yaml}
  - table: "3"
    caption: Per class and landmarks
    units: percent
    protocol: 3-fold
    columns:
      - {key: anger, header: AN, benchmark: ck+, metric: class_accuracy, true_class: anger}
      - {key: to_happy, header: AN->HA, benchmark: ck+, metric: confusion_rate, predicted_class: happiness}
      - {key: nme, header: NME common, benchmark: 300w, split: common, metric: nme_inter_pupil}
      - {key: full, header: NME full, benchmark: 300w, combine_splits: [common, challenging], metric: nme_inter_pupil}
    rows:
      - {method: Ours, true_class: anger, values: {anger: 88.0, to_happy: 12.0}, config: train/configs/a.yaml}
      - {method: Ours landmarks, values: {nme: 4.00, full: 5.00}, config: train/configs/a.yaml}
      - {method: Half evaluated, values: {full: 5.00}, config: train/configs/b.yaml}
"""

CLASSES = ["anger", "happiness"]


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _results(path, benchmark, metrics, split="test", **extra):
    record = {"benchmark": benchmark, "split": split, "metrics": metrics,
              "synthetic": benchmark == "synthface", "median_window": None, **extra}
    _write(path, json.dumps(record))


@pytest.fixture()
def project(tmp_path):
    root = tmp_path / "project"
    for stem, name in (("a", "paper_a"), ("b", "paper_b"), ("c", "paper_c"), ("s", "synth_a")):
        _write(str(root / "train" / "configs" / f"{stem}.yaml"), f"name: {name}\nepochs: 1\n")
    _write(str(root / "references" / "demo.yaml"), REFERENCE)
    runs = root / "runs"
    folds = (  # (accuracy, confusion matrix rows anger / happiness)
        (0.78, [[8, 2], [1, 9]]),
        (0.83, [[9, 1], [3, 7]]),
        (0.80, [[10, 0], [2, 8]]),
    )
    for k, (accuracy, matrix) in enumerate(folds):
        fold = runs / f"a_fold{k}"
        _write(str(fold / "config.yaml"), "name: paper_a\n")
        _results(str(fold / "eval" / "results.json"), "ck+", {"accuracy": accuracy},
                 confusion_matrix=matrix, expression_classes=CLASSES)
    _results(str(runs / "a_fold0" / "eval_val" / "results.json"), "ck+", {"accuracy": 0.10},
             split="val")
    _results(str(runs / "a_fold0" / "eval_300w" / "results.json"), "300w",
             {"nme_inter_pupil": 4.2}, split="common", samples_per_task={"landmarks": 3})
    _results(str(runs / "a_fold0" / "eval_300w_hard" / "results.json"), "300w",
             {"nme_inter_pupil": 8.2}, split="challenging", samples_per_task={"landmarks": 1})
    _results(str(runs / "b" / "300w" / "results.json"), "300w",  # the other subset is missing
             {"nme_inter_pupil": 4.0}, split="common", samples_per_task={"landmarks": 3})
    _write(str(runs / "b" / "config.yaml"), "name: paper_b\n")
    _results(str(runs / "b" / "median" / "results.json"), "aff_wild", {"ccc_valence": 0.47},
             median_window=5)
    _results(str(runs / "b" / "raw" / "results.json"), "aff_wild", {"ccc_valence": 0.46})
    _write(str(runs / "s" / "config.yaml"), "name: synth_a\n")
    _results(str(runs / "s" / "results.json"), "synthface", {"accuracy": 0.9})
    _results(str(runs / "s" / "val" / "results.json"), "synthface", {"accuracy": 0.2},
             split="val")
    _results(str(runs / "orphan" / "results.json"), "ck+", {"accuracy": 0.5})
    return root


def _report(project):
    return build_report(str(project / "references"), str(project / "runs"), root=str(project))


def _cell(cells, table, method, column):
    match = cells[(cells["table"] == table) & (cells["method"] == method)
                  & (cells["column"] == column)]
    assert len(match) == 1, (table, method, column)
    return match.iloc[0]


# (table, method, column): (paper, ours, difference, runs, synthface, within 1 point)
EXPECTED = {
    # folds 78, 83, 80 % -> 80.333; the val-split 10 % is not a fold of the test split;
    # SynthFace: the test split's 90 %, not the val split's 20 %
    ("Table 1", "Ours", "Acc (%)"): (80.0, 241 / 3, 241 / 3 - 80, 3, 90.0, True),
    ("Table 1", "Baseline", "Acc (%)"): (70.0, None, None, 0, None, None),
    ("Table 1", "Handcrafted", "Acc (%)"): (50.0, None, None, 0, None, None),
    ("Table 1", "Future", "Acc (%)"): (60.0, None, None, 0, None, None),
    # fractions stay fractions: 0.47 - 0.50 = -0.03 = 3 points; 0.46 - 0.45 = 1 point
    ("Table 2", "Ours", "CCC-V"): (0.50, 0.47, -0.03, 1, None, False),
    ("Table 2", "Ours", "CCC-V raw"): (0.45, 0.46, 0.01, 1, None, True),
    # anger recall 8/10, 9/10, 10/10 -> 90 %; anger->happiness 2/10, 1/10, 0/10 -> 10 %
    ("Table 3", "Ours", "AN"): (88.0, 90.0, 2.0, 3, None, False),
    ("Table 3", "Ours", "AN->HA"): (12.0, 10.0, -2.0, 3, None, False),
    # NME is already in percent: no conversion
    ("Table 3", "Ours landmarks", "NME common"): (4.0, 4.2, 0.2, 1, None, True),
    # full set pooled from its subsets by sample count: (3 x 4.2 + 1 x 8.2) / 4 = 5.2
    ("Table 3", "Ours landmarks", "NME full"): (5.0, 5.2, 0.2, 1, None, True),
    # only the common subset evaluated: no full-set value
    ("Table 3", "Half evaluated", "NME full"): (5.0, None, None, 0, None, None),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_cell_values_against_the_hand_worked_table(project, key):
    cells, _, _ = _report(project)
    cell = _cell(cells, *key)
    paper, ours, difference, runs, synthface, within = EXPECTED[key]
    assert cell["paper"] == pytest.approx(paper)
    for name, expected in (("ours", ours), ("difference", difference), ("synthface", synthface)):
        if expected is None:
            assert math.isnan(cell[name]), name
        else:
            assert cell[name] == pytest.approx(expected), name
    assert cell["runs"] == runs
    assert (None if cell["within_1_point"] is None or cell["within_1_point"] != cell["within_1_point"]
            else bool(cell["within_1_point"])) == within


def test_summary_counts_rows_configs_runs_and_agreement(project):
    _, summary, unmatched = _report(project)
    assert summary.drop(columns=["paper_id", "citation"]).to_dict(orient="records") == [{
        "rows": 8, "with_config": 6, "pending": 1, "not_reproducible": 1,
        "run": 4,             # Table 1 Ours, Table 2 Ours, both Table 3 rows
        "within_1_point": 2,  # Table 1 Ours, Table 3 landmarks (Table 2 Ours has a 3-point cell)
        "synthface_run": 1,
    }]
    assert unmatched == [str((project / "runs" / "orphan" / "results.json").resolve())]


def test_markdown_table_1_as_printed(project):
    cells, _, _ = _report(project)
    table = cells[cells["table"] == "Table 1"]
    assert reproduction.markdown_table(reproduction.display_table(table)).splitlines() == [
        "| Method | Column | Paper | Ours | Difference | Runs | SynthFace | Config |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        "| Ours | Acc (%) | 80.0 | 80.33 | 0.33 | 3 | 90.00 | `train/configs/a.yaml` |",
        "| Baseline | Acc (%) | 70.0 | not run |  |  |  | `train/configs/c.yaml` |",
        "| Handcrafted | Acc (%) | 50.0 | not reproducible: handcrafted features |  |  |  |  |",
        "| Future | Acc (%) | 60.0 | pending: config (issue 99) |  |  |  |  |",
    ]


def test_bold_paper_values_and_fraction_formatting(project):
    cells, _, _ = _report(project)
    shown = reproduction.display_table(cells[cells["table"] == "Table 2"])
    assert shown[["Paper", "Ours", "Difference"]].values.tolist() == [
        ["**0.50**", "0.470", "-0.030"], ["0.45", "0.460", "0.010"]]


def test_cli_writes_markdown_json_and_the_readme_section(project, capsys):
    readme = project / "README.md"
    readme.write_text("# Demo\n\nIntro.\n", encoding="utf-8")
    argv = ["--references", str(project / "references"), "--runs", str(project / "runs"),
            "--root", str(project), "--out", str(project / "docs" / "REPRODUCTION.md"),
            "--readme", str(readme)]
    assert main(argv) == 0
    markdown = (project / "docs" / "REPRODUCTION.md").read_text(encoding="utf-8")
    assert "| Demo et al. | 8 | 6 | 1 | 1 | 4 | 2 | 1 |" in markdown
    assert "orphan" in markdown
    data = json.loads((project / "runs" / "reproduction.json").read_text(encoding="utf-8"))
    assert data["summary"][0]["within_1_point"] == 2
    never_run = [c for c in data["cells"] if c["method"] == "Baseline"]
    assert never_run[0]["ours"] is None and never_run[0]["status"] == "config"
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Demo\n\nIntro.\n\n" + reproduction.README_START)
    assert "- **Demo et al.**: 8 rows, 6 with a config, 1 pending, 1 not reproducible; " \
           "4 run on real data, 2 within 1 point of the paper; 1 with a SynthFace result." in text
    assert main(argv) == 0  # a second run replaces the section instead of appending one
    assert readme.read_text(encoding="utf-8").count(reproduction.README_START) == 1


def test_without_runs_every_configured_row_is_not_run(project):
    cells, summary, _ = build_report(str(project / "references"), None, root=str(project))
    assert cells["ours"].isna().all() and int(summary["run"].iloc[0]) == 0


def test_missing_runs_folder_exits_2_naming_it(project, capsys):
    missing = project / "no_runs"
    assert main(["--references", str(project / "references"), "--runs", str(missing),
                 "--root", str(project), "--out", str(project / "r.md")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_bad_reference_exits_2_naming_file_and_key(project, capsys):
    path = project / "references" / "demo.yaml"
    path.write_text(REFERENCE.replace("metric: accuracy", "metric: acuracy"), encoding="utf-8")
    assert main(["--references", str(project / "references"), "--root", str(project),
                 "--out", str(project / "r.md"), "--json", str(project / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "demo.yaml" in err and "metric" in err


def _reference_cells_of(markdown):
    """The first three cells of every table line: paper-side content, not our results."""
    return [line.split(" | ")[:3] for line in markdown.splitlines() if line.startswith("| ")]


def test_shipped_reproduction_doc_shows_the_current_references(tmp_path):
    """docs/REPRODUCTION.md lists what evaluate/references holds (regenerate with fermtl-report)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "R.md"
    assert main(["--references", os.path.join(root, "evaluate", "references"), "--root", root,
                 "--out", str(out)]) == 0
    assert sorted(os.listdir(tmp_path)) == ["R.md"]  # no JSON without --runs or --json
    with open(os.path.join(root, "docs", "REPRODUCTION.md"), encoding="utf-8") as handle:
        shipped = handle.read()
    assert _reference_cells_of(shipped) == _reference_cells_of(out.read_text(encoding="utf-8"))


# --- registry additions the report relies on (Kollias Table 8) ------------------------


def test_celeba_identity_and_attribute_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    n, identities, attributes = 40, 5, 3
    identity = rng.integers(0, identities, n)
    identity[:4] = -1  # missing identity labels are left out
    identity_logits = rng.normal(size=(n, identities))
    truth = (rng.random((n, attributes)) < 0.5).astype(np.float32)
    logits = rng.normal(size=(n, attributes))
    labels = {"identity": identity, "attributes": truth,
              "attributes_mask": np.ones((n, attributes), np.float32)}
    outputs = {"identity_logits": identity_logits, "attributes_logits": logits}
    results = runner.compute_metrics(benchmarks.get_benchmark("celeba"), outputs, labels, {}, {})
    keep = identity >= 0
    predicted = identity_logits[keep].argmax(axis=1)
    assert results["metrics"]["identity_accuracy"] == pytest.approx(
        skm.accuracy_score(identity[keep], predicted))
    assert results["metrics"]["identity_macro_f1"] == pytest.approx(skm.f1_score(
        identity[keep], predicted, labels=range(identities), average="macro", zero_division=0))
    positive = logits > 0  # sigmoid >= 0.5
    assert results["metrics"]["attribute_accuracy"] == pytest.approx(
        np.mean(positive == (truth > 0.5)))
    assert results["metrics"]["attribute_f1"] == pytest.approx(np.mean(
        [skm.f1_score(truth[:, j], positive[:, j]) for j in range(attributes)]))
    assert results["samples_per_task"] == {"identity": n - 4, "attributes": n}


def test_metric_units_percent_only_for_nme():
    assert [benchmarks.metric_unit(m) for m in ("nme_inter_pupil", "accuracy", "ccc_valence")] \
        == ["percent", "fraction", "fraction"]


def test_reference_config_yaml_is_read_for_its_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"epochs": 1}), encoding="utf-8")
    with pytest.raises(reproduction.ReportInputError, match="missing key 'name'"):
        reproduction.config_name(path)


def test_reads_results_json_as_the_evaluation_writer_writes_it(project, tmp_path):
    """A results.json from ``report.write_report`` (fermtl-eval's writer) is matched too."""
    from fermtl_tf.evaluation import report as eval_report

    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0])
    probs = np.eye(2)[y_pred]
    labels = {"expression": y_true, "expression_mask": np.ones(9)}
    manifest = {"vocabularies": {"expression": CLASSES}}
    bench = benchmarks.get_benchmark("ck+")
    results = {"benchmark": "ck+", "title": bench.title, "synthetic": False, "split": "test",
               "median_window": None, "num_samples": 9, "model_dir": "m", "data_dir": "d",
               **runner.compute_metrics(bench, {"expression_probs": probs}, labels, {}, manifest)}
    runs = tmp_path / "runs"
    _write(str(runs / "run" / "config.yaml"), "name: paper_a\n")
    eval_report.write_report(results, str(runs / "run" / "eval"))
    cells, _, _ = build_report(str(project / "references"), str(runs), root=str(project))
    assert _cell(cells, "Table 1", "Ours", "Acc (%)")["ours"] == pytest.approx(700 / 9)
    assert _cell(cells, "Table 3", "Ours", "AN")["ours"] == pytest.approx(75.0)      # 3 of 4
    assert _cell(cells, "Table 3", "Ours", "AN->HA")["ours"] == pytest.approx(25.0)  # 1 of 4


# --- --synthface: the studies run first, their runs fill the SynthFace column ---------

FAKE_STUDY = '''
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--seeds", type=int, nargs="+")
parser.add_argument("--runs")
parser.add_argument("--page")
args = parser.parse_args()
run = os.path.join(args.runs, "s", "seed%d" % args.seeds[0])
os.makedirs(os.path.join(run, "eval"), exist_ok=True)
open(os.path.join(run, "config.yaml"), "w").write("name: synth_a\\n")
json.dump({"benchmark": "synthface", "split": "test", "synthetic": True,
           "metrics": {"accuracy": 0.4 + 0.1 * args.seeds[0]}},
          open(os.path.join(run, "eval", "results.json"), "w"))
json.dump({"argv": sys.argv[1:]}, open(os.path.join(args.runs, "argv.json"), "w"))
'''


def test_synthface_mode_runs_each_study_then_reports_its_runs(project, capsys):
    _write(str(project / "train" / "demo_synthface_study.py"), FAKE_STUDY)
    runs = project / "fresh_runs"
    argv = ["--references", str(project / "references"), "--root", str(project),
            "--out", str(project / "R.md"), "--synthface", "--seeds", "2",
            "--runs", str(runs)]
    assert main(argv) == 0
    study_runs = runs / "studies" / "demo"
    recorded = json.loads((study_runs / "argv.json").read_text())["argv"]
    assert recorded == ["--seeds", "2", "--runs", str(study_runs), "--page", ""]
    cells, _, _ = build_report(str(project / "references"), str(runs), root=str(project))
    np.testing.assert_allclose(_cell(cells, "Table 1", "Ours", "Acc (%)")["synthface"], 60.0)
    assert "demo study" in capsys.readouterr().out


def test_synthface_mode_stops_on_a_failing_study(project, capsys):
    _write(str(project / "train" / "broken_synthface_study.py"), "raise SystemExit(3)\n")
    assert main(["--references", str(project / "references"), "--root", str(project),
                 "--out", str(project / "R.md"), "--synthface"]) == 1
    assert "broken_synthface_study.py exited with status 3" in capsys.readouterr().err
    assert not (project / "R.md").exists()
