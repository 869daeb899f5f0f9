"""emotionet importer on a SynthFace fixture: CSV of URLs + AU columns, fetched images."""

import os

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import PrepError, get_source
from fermtl_tf.data.synthface.layouts.emotionet import EMOTIONET_AUS, write_emotionet
from fermtl_tf.knowledge.vocabularies import BASIC7, RAFCE14

IMAGES = 6


def load(root, *extra):
    args = build_parser().parse_args(["emotionet", "--root", str(root / "images"), "--labels",
                                      str(root / "emotionet.csv"), "--out", "unused", *extra])
    return get_source("emotionet").load(args)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("emotionet")
    truth = write_emotionet(root / "raw", num_images=IMAGES, plant_bad=True)
    status = main(["emotionet", "--root", str(root / "raw" / "images"), "--labels",
                   f"val={root / 'raw' / 'emotionet.csv'}", "--expressions", "basic",
                   "--out", str(root / "out"), "--quiet", "--size", "64"])
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, manifest["num_aus"], 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records, root / "raw"


def test_counts_and_skip_report_name_the_missing_download(prepared):
    _, manifest, records, _ = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == IMAGES + 1
    assert len(records) == IMAGES
    (skip,) = manifest["skipped"]
    assert skip["where"] == f"emotionet.csv line {IMAGES + 2}"
    assert "never_downloaded.jpg" in skip["reason"]


def test_aus_with_999_masked_and_basic_emotions_mapped(prepared):
    truth, manifest, records, _ = prepared
    assert manifest["au_names"] == [f"AU{n}" for n in EMOTIONET_AUS]
    assert manifest["splits"] == {"val": IMAGES}
    for record in records:
        expected = truth["images"][record["image_id"].decode()]
        values = np.array([expected["aus"][n] for n in EMOTIONET_AUS])
        np.testing.assert_array_equal(record["au_mask"], values != 999)
        np.testing.assert_array_equal(record["au"], np.where(values == 999, 0, values))
        if expected["expression"] in BASIC7:
            assert BASIC7[record["expression"]] == expected["expression"]
        else:
            assert record["expression_mask"] == 0  # compound rows masked in basic mode


def test_compound_mode_maps_compound_categories_to_rafce14(prepared):
    truth, _, _, raw = prepared
    dataset = load(raw, "--expressions", "compound")
    assert dataset.vocabulary_name == "rafce14"
    for face in dataset.inputs[:IMAGES]:
        expected = truth["images"][face.image_id]["expression"]
        assert (RAFCE14[face.expression] if face.expression is not None else None) == (
            expected if expected in RAFCE14 else None)


def test_row_naming_finds_images_named_by_row_number(tmp_path):
    truth = write_emotionet(tmp_path, num_images=3, size=64)
    for row, name in enumerate(truth["images"], start=1):
        os.rename(tmp_path / "images" / name, tmp_path / "images" / f"{row:06d}.png")
    dataset = load(tmp_path, "--naming", "row")
    assert [os.path.basename(f.image_path) for f in dataset.inputs] == [
        "000001.png", "000002.png", "000003.png"]


def test_excel_sheet_is_refused_with_a_conversion_hint(tmp_path):
    write_emotionet(tmp_path, num_images=1, size=64)
    args = build_parser().parse_args(["emotionet", "--root", str(tmp_path / "images"),
                                      "--labels", str(tmp_path / "sheet.xlsx"), "--out", "x"])
    with pytest.raises(PrepError, match="save the sheet as CSV"):
        get_source("emotionet").load(args)
