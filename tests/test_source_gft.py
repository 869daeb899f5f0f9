"""gft importer on a SynthFace fixture in the documented GFT layout."""

import numpy as np
import pytest

from fermtl_tf.cli.prep import build_parser, main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.sources import get_source
from fermtl_tf.data.synthface.layouts.gft import GFT_AUS, write_gft

FRAMES = 5


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("gft")
    truth = write_gft(root / "raw", num_videos=3, frames=FRAMES, plant_bad=True)
    status = main(["gft", "--root", str(root / "raw"), "--out", str(root / "out"),
                   "--quiet", "--size", "64"])
    assert status == 0
    manifest = tfrecord.read_manifest(root / "out")
    records = [{k: v.numpy() for k, v in decode_example(r, manifest["num_aus"], 0).items()}
               for r in tfrecord.iter_records(root / "out")]
    return truth, manifest, records


def test_counts_and_skip_report(prepared):
    _, manifest, records = prepared
    counts = manifest["counts"]
    assert counts["inputs"] == counts["written"] + counts["skipped"] == 3 * FRAMES
    assert [s["where"] for s in manifest["skipped"]] == ["AU_OCC/001_A.csv line 3"]
    assert len(records) == 3 * FRAMES - 1


def test_au_labels_with_nine_masked_and_every_frame_in_test(prepared):
    truth, manifest, records = prepared
    assert manifest["au_names"] == [f"AU{n}" for n in GFT_AUS]
    assert manifest["splits"] == {"test": len(records)}
    for record in records:
        expected = truth["aus"][(record["sequence_id"].decode(), int(record["frame_index"]))]
        np.testing.assert_array_equal(record["au_mask"],
                                      [float(expected[n] is not None) for n in GFT_AUS])
        np.testing.assert_array_equal(record["au"], [expected[n] or 0 for n in GFT_AUS])


def test_train_videos_file_sets_the_training_split(tmp_path):
    truth = write_gft(tmp_path / "raw", num_videos=2, frames=2)
    (tmp_path / "train.txt").write_text(truth["videos"][0] + "\n")
    args = build_parser().parse_args(["gft", "--root", str(tmp_path / "raw"), "--out",
                                      str(tmp_path / "out"), "--train-videos",
                                      str(tmp_path / "train.txt")])
    dataset = get_source("gft").load(args)
    splits = {(f.sequence_id, f.split) for f in dataset.inputs}
    assert splits == {(truth["videos"][0], "train"), (truth["videos"][1], "test")}
