"""raf_ce importer: the fermtl-tf RAF-CE list format, AU labels, meta-validation hold-out."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.sources.raf_ce import parse_aus
from fermtl_tf.data.synthface.layouts.raf_ce import write_raf_ce
from fermtl_tf.knowledge.vocabularies import RAFCE14


def read(out):
    manifest = tfrecord.read_manifest(out)
    sizes = manifest["num_aus"], manifest["num_attributes"]
    records = [{k: v.numpy() for k, v in decode_example(r, *sizes).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("rafce")
    truth = write_raf_ce(root, plant_bad=True)
    out = root / "out"
    assert main(["raf_ce", "--root", str(root), "--out", str(out), "--quiet",
                 "--size", "64"]) == 0
    return root, truth, read(out)


def test_classes_and_aus_match_the_rendered_faces(prepared):
    _, truth, (manifest, records) = prepared
    names = manifest["au_names"]
    for name, record in records.items():
        assert RAFCE14[record["expression"]] == truth[name]["class"]
        expected = np.array([float(int(n[2:]) in truth[name]["aus"]) for n in names])
        np.testing.assert_array_equal(record["au"], expected)
        assert record["au_mask"].min() == 1.0


def test_a_quarter_of_train_is_held_out_as_validation(prepared):
    _, truth, (_, records) = prepared
    train_names = [n for n in truth if n.startswith("train_")]
    held = [n for n, r in records.items() if r["split"] == b"val"]
    assert len(held) == round(0.25 * len(train_names))
    assert all(n.startswith("train_") for n in held)
    assert all(r["split"] == b"test" for n, r in records.items() if n.startswith("test_"))


def test_hold_out_is_fixed_by_the_seed(prepared, tmp_path):
    root = prepared[0]
    parser_args = ["--root", str(root), "--out", str(tmp_path)]
    from fermtl_tf.cli.prep import build_parser

    def held(seed):
        args = build_parser().parse_args(["raf_ce", *parser_args, "--split-seed", str(seed)])
        return {f.image_id for f in get_source("raf_ce").load(args).inputs if f.split == "val"}

    assert held(0) == held(0)
    assert held(0) != held(1)


def test_bad_au_token_is_a_skip_naming_the_line(prepared):
    _, truth, (manifest, _) = prepared
    skipped = manifest["skipped"]
    assert [s["input"] for s in skipped] == ["train_9999.jpg"]
    assert f"line {len(truth) + 1}" in skipped[0]["where"] and "AUx" in skipped[0]["reason"]


@pytest.mark.parametrize("field, expected", [
    ("1+AU4+L12+25R", ["AU1", "AU4", "AU12L", "AU25R"]), ("0", []), ("none", []), (None, None)])
def test_au_field_forms(field, expected):
    assert parse_aus(field) == expected
