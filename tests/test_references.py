"""The transcribed paper tables in evaluate/references/: format, registry keys, configs.

The checks on the numbers themselves are identities the papers' own tables obey
(a mean diagonal is the mean of the per-class accuracies; a 300-W full-set error is
the image-weighted mean of its two subsets), so a mistyped or misplaced cell fails.
"""

import copy
import glob
import os

import pytest
import yaml

from fermtl_tf.config_files import read_raw_config
from fermtl_tf.evaluation.benchmarks import BENCHMARKS, CONFUSION_METRICS, SYNTHESIS_METRICS
from fermtl_tf.evaluation.references import (
    ROW_STATUSES,
    ReferenceError,
    config_paths,
    load_references,
    validate_reference,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCES = os.path.join(ROOT, "evaluate", "references")
FILES = ("hu2018", "fersnet", "facebehaviornet", "meta_mtl", "tuple_clusters")


def _raw(name):
    with open(os.path.join(REFERENCES, f"{name}.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _rows(document):
    return [(table, row) for table in document["tables"] for row in table["rows"]]


@pytest.fixture(scope="module")
def documents():
    return {name: _raw(name) for name in FILES}


def test_one_file_per_paper():
    names = sorted(os.path.splitext(os.path.basename(p))[0]
                   for p in glob.glob(os.path.join(REFERENCES, "*.yaml")))
    assert names == sorted(FILES)


def test_every_file_passes_the_schema_with_config_paths_checked():
    loaded = load_references(REFERENCES, root=ROOT)
    assert sorted(loaded) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_every_metric_key_is_in_the_benchmark_registry(documents, name):
    for table in documents[name]["tables"]:
        for column in table["columns"]:
            benchmark = BENCHMARKS[column["benchmark"]]
            metric = column["metric"]
            if metric in CONFUSION_METRICS + SYNTHESIS_METRICS:
                assert "expression" in benchmark.task_metrics, column
            else:
                assert metric in benchmark.metric_names, column


@pytest.mark.parametrize("name", FILES)
def test_every_config_path_exists_and_every_row_has_one_status(documents, name):
    for _, row in _rows(documents[name]):
        assert sum(key in row for key in ROW_STATUSES) == 1, row["method"]
        for path in config_paths(row):
            assert os.path.isfile(os.path.join(ROOT, path)), path
        for path in config_paths(row, "synthface_config"):
            assert os.path.isfile(os.path.join(ROOT, path)), path
            assert os.path.basename(path).startswith("synthface_"), path


def test_every_paper_table_config_is_named_by_a_row(documents):
    named = {path for document in documents.values()
             for _, row in _rows(document) for path in config_paths(row)}
    shipped = {os.path.relpath(p, ROOT).replace(os.sep, "/")
               for p in glob.glob(os.path.join(ROOT, "train", "configs", "*", "table*.yaml"))}
    assert shipped - named == set()


def test_configs_named_by_rows_have_distinct_run_names(documents):
    """Runs are matched to rows by the config's ``name``: two configs must not share one."""
    names = {}
    for document in documents.values():
        for _, row in _rows(document):
            for path in config_paths(row):
                name = read_raw_config(os.path.join(ROOT, path))["name"]
                names.setdefault(name, set()).add(path)
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}


def test_every_table_the_brief_lists_is_transcribed(documents):
    tables = {name: sorted({t["table"] for t in documents[name]["tables"]}) for name in FILES}
    assert tables == {
        "hu2018": ["4", "5", "6", "7"],
        "fersnet": ["II", "III", "IV", "V", "VI"],
        "facebehaviornet": ["3", "4", "5", "6", "7", "8"],
        "meta_mtl": ["2", "3"],
        "tuple_clusters": ["1", "2", "3", "4", "5"],
    }


def test_mml_mean_diagonal_is_the_mean_of_the_14_class_accuracies(documents):
    table = documents["meta_mtl"]["tables"][0]
    class_keys = [c["key"] for c in table["columns"] if c["metric"] == "class_accuracy"]
    assert len(class_keys) == 14
    for row in table["rows"]:
        classes = [row["values"][key] for key in class_keys]
        assert sum(classes) / 14 == pytest.approx(row["values"]["diag"], abs=0.005), row["method"]


def test_mml_ablation_rows_match_the_text_of_section_5_3(documents):
    rows = {(r["method"], r["labels"]["Statistics"]): r["values"]["acc"]
            for r in documents["meta_mtl"]["tables"][1]["rows"]}
    wild = rows[("MML(Ours)", "In the wild")]
    assert wild - rows[("MAL", "")] == pytest.approx(2.86)
    assert wild - rows[("AM", "In the wild")] == pytest.approx(1.87)
    assert wild - rows[("MML(Ours)", "Lab [6, 7]")] == pytest.approx(0.22)
    assert wild == documents["meta_mtl"]["tables"][0]["rows"][2]["values"]["acc"]


def test_hu_300w_full_set_is_the_weighted_mean_of_its_subsets(documents):
    table = next(t for t in documents["hu2018"]["tables"] if t["table"] == "6")
    for row in table["rows"]:
        values = row["values"]
        full = (554 * values["common"] + 135 * values["challenging"]) / 689
        # every printed value is rounded to +-0.005, so the identity holds to 0.01
        assert full == pytest.approx(values["full"], abs=0.01), row["method"]


def test_liu_confusion_matrix_diagonals_average_near_the_table_3_accuracy(documents):
    """Table 1's diagonal, weighted by the CK+ class sizes, is close to Table 3's 97.1 %.

    Class sizes (sequences per class) from FERSNet Table I; Liu selects the same 327
    sequences. Loose tolerance: the published matrices have rows that do not sum to 100.
    """
    sizes = {"anger": 45, "contempt": 18, "disgust": 59, "fear": 25, "happiness": 69,
             "sadness": 28, "surprise": 83}
    table = documents["tuple_clusters"]["tables"][0]
    diagonal = {row["true_class"]: row["values"][
        next(c["key"] for c in table["columns"] if c["predicted_class"] == row["true_class"])]
        for row in table["rows"]}
    weighted = sum(diagonal[c] * n for c, n in sizes.items()) / sum(sizes.values())
    assert weighted == pytest.approx(97.1, abs=1.0)


def _hu():
    return _raw("hu2018")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tables"][0]["columns"][0].update(metric="f1_weighted"), "does not report"),
    (lambda d: d["tables"][0]["columns"][0].update(benchmark="lsemsw2"), "unknown benchmark"),
    (lambda d: d["tables"][0]["rows"][0].pop("config"), "exactly one of"),
    (lambda d: d["tables"][0]["rows"][0].update(pending="x"), "exactly one of"),
    (lambda d: d["tables"][0]["rows"][0]["values"].update(accc=1.0), "not a column key"),
    (lambda d: d["tables"][0]["rows"][0]["values"].update(acc="28.39"), "number or null"),
    (lambda d: d["tables"][0].update(units="percentage"), "must be one of"),
    (lambda d: d["tables"][0]["rows"][0].update(confg="x.yaml"), "unknown key"),
    (lambda d: d["tables"][0]["rows"][0].update(config="train/configs/none.yaml"), "not found"),
])
def test_schema_errors_name_the_file_and_the_key(edit, message):
    document = copy.deepcopy(_hu())
    edit(document)
    with pytest.raises(ReferenceError, match=message) as error:
        validate_reference(document, "hu2018.yaml", root=ROOT)
    assert str(error.value).startswith("hu2018.yaml: key 'tables[0]")


def test_confusion_rate_column_needs_the_rows_true_class():
    document = copy.deepcopy(_raw("tuple_clusters"))
    document["tables"][0]["rows"][0].pop("true_class")
    with pytest.raises(ReferenceError, match="true class"):
        validate_reference(document, "tuple_clusters.yaml")


def test_only_sample_means_pool_across_splits():
    document = copy.deepcopy(_raw("facebehaviornet"))
    document["tables"][0]["columns"][0]["combine_splits"] = ["test", "val"]
    with pytest.raises(ReferenceError, match="not a mean over samples"):
        validate_reference(document, "facebehaviornet.yaml")
