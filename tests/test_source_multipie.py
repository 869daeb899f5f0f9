"""multipie importer: list CSV and distributed tree, the frontal +-45 degree selection."""

import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.multipie import write_multipie
from fermtl_tf.knowledge.vocabularies import BASIC7, MULTIPIE4

#: Written cameras' yaw (Multi-PIE: 05_1 frontal, 04_1 at 30 degrees, 20_0 at 60 degrees).
YAW = {"05_1": 0, "04_1": 30, "20_0": 60}
KEPT = {"neutral": "neutral", "smile": "happiness", "surprise": "surprise",
        "disgust": "disgust"}


def selected(truth):
    return {p for p, t in truth.items() if t["expression"] in KEPT and YAW[t["camera"]] <= 45}


def read(out):
    manifest = tfrecord.read_manifest(out)
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


@pytest.fixture(scope="module")
def listed(tmp_path_factory):
    root = tmp_path_factory.mktemp("multipie")
    truth = write_multipie(root, plant_bad=True)
    out = root / "out"
    assert main(["multipie", "--root", str(root), "--csv", "multipie.csv", "--out", str(out),
                 "--quiet", "--size", "64", "--folds", "2"]) == 0
    return truth, read(out)


def test_selection_counts_and_the_truncated_image(listed):
    truth, (manifest, records) = listed
    counts = manifest["counts"]
    assert counts["inputs"] == len(selected(truth)) == counts["written"] + counts["skipped"]
    assert sum(manifest["source_info"]["excluded"].values()) == len(truth) - counts["inputs"]
    bad = [p for p, t in truth.items() if t.get("truncated")]
    assert [s["input"] for s in manifest["skipped"]] == bad
    assert set(records) == selected(truth) - set(bad)


def test_expressions_and_subjects(listed):
    truth, (manifest, records) = listed
    assert manifest["identities"] == {"1": 0, "2": 1}
    for path, record in records.items():
        assert BASIC7[record["expression"]] == KEPT[truth[path]["expression"]]
        assert record["identity"] == truth[path]["subject"] - 1
        assert record["split"] == b"train"


def test_no_subject_in_two_folds(listed):
    _, (_, records) = listed
    folds = {}
    for record in records.values():
        folds.setdefault(record["identity"], set()).add(record["fold"])
    assert all(len(f) == 1 for f in folds.values()) and len(folds) == 2


def test_distributed_tree_gives_the_same_selection(tmp_path):
    truth = write_multipie(tmp_path, layout="tree")
    args = build_parser().parse_args(["multipie", "--root", str(tmp_path), "--out",
                                      str(tmp_path / "o")])
    dataset = get_source("multipie").load(args)
    assert {f.image_id for f in dataset.inputs} == selected(truth)
    assert all(BASIC7[f.expression] == KEPT[truth[f.image_id]["expression"]]
               for f in dataset.inputs)


def test_a_wider_yaw_limit_keeps_the_60_degree_camera(tmp_path):
    truth = write_multipie(tmp_path, num_subjects=1, layout="tree")
    args = build_parser().parse_args(["multipie", "--root", str(tmp_path), "--out",
                                      str(tmp_path / "o"), "--max-yaw", "60"])
    kept = {f.image_id for f in get_source("multipie").load(args).inputs}
    assert kept == {p for p, t in truth.items() if t["expression"] in KEPT}


def test_classes_multipie4_gives_a_four_class_vocabulary(tmp_path):
    truth = write_multipie(tmp_path, num_subjects=1, layout="tree")
    args = build_parser().parse_args(["multipie", "--root", str(tmp_path), "--out",
                                      str(tmp_path / "o"), "--classes", "multipie4"])
    dataset = get_source("multipie").load(args)
    assert dataset.vocabulary_name == "multipie4" and len(dataset.vocabulary) == 4
    assert {f.image_id for f in dataset.inputs} == selected(truth)
    assert all(MULTIPIE4[f.expression] == KEPT[truth[f.image_id]["expression"]]
               for f in dataset.inputs)


def load(root, *flags, layout_csv=False):
    argv = ["multipie", "--root", str(root), "--out", str(root / "o"), *flags]
    if layout_csv:
        argv += ["--csv", "multipie.csv"]
    return get_source("multipie").load(build_parser().parse_args(argv))


@pytest.fixture(scope="module")
def raised(tmp_path_factory):
    """One subject seen by a head-height, a raised (08_1 at -30 deg) and a 45-deg camera,
    under illuminations 0 and 7, in the list layout (the tree scan reads the same files)."""
    root = tmp_path_factory.mktemp("raised")
    truth = write_multipie(root, num_subjects=1, cameras=("05_1", "08_1", "19_0"),
                           illuminations=(0, 7))
    return root, truth


def kept_paths(truth, cameras, illuminations=(0, 7)):
    return {p for p, t in truth.items() if t["expression"] in KEPT
            and t["camera"] in cameras and t["illumination"] in illuminations}


@pytest.mark.parametrize("layout_csv", [False, True])
def test_max_yaw_leaves_out_the_raised_cameras(raised, layout_csv):
    root, truth = raised
    dataset = load(root, layout_csv=layout_csv)
    assert {f.image_id for f in dataset.inputs} == kept_paths(truth, {"05_1", "19_0"})
    reasons = dataset.info["excluded"]
    assert reasons["raised camera 08_1 (name it in --cameras)"] == len(
        kept_paths(truth, {"08_1"}))


@pytest.mark.parametrize("layout_csv", [False, True])
def test_cameras_and_illuminations_select_exactly_those(raised, layout_csv):
    root, truth = raised
    dataset = load(root, "--cameras", "081,05_1", "--illuminations", "7",
                   layout_csv=layout_csv)
    assert {f.image_id for f in dataset.inputs} == kept_paths(truth, {"05_1", "08_1"}, (7,))
    assert dataset.info["cameras"] == ["05_1", "08_1"] and dataset.info["illuminations"] == [7]


@pytest.mark.parametrize("flags, message", [
    (["--cameras", "05_1,99_9"], "unknown camera.*99_9"),
    (["--illuminations", "3,20"], "0-19"),
    (["--illuminations", "x"], "0-19"),
])
def test_bad_camera_or_illumination_lists_are_refused(raised, flags, message):
    from fermtl_tf.data.sources import PrepError

    with pytest.raises(PrepError, match=message):
        load(raised[0], *flags)


def test_illuminations_need_the_column_in_a_list_csv(tmp_path):
    from fermtl_tf.data.sources import PrepError

    write_multipie(tmp_path, num_subjects=1, cameras=("05_1",))
    rows = (tmp_path / "multipie.csv").read_text().splitlines()
    header = rows[0].split(",")
    drop = header.index("illumination")
    stripped = [",".join(c for k, c in enumerate(r.split(",")) if k != drop) for r in rows]
    (tmp_path / "multipie.csv").write_text("\n".join(stripped) + "\n")
    with pytest.raises(PrepError, match="'illumination' column"):
        load(tmp_path, "--illuminations", "0", layout_csv=True)
