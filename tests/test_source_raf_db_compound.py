"""raf_db_compound importer on a SynthFace fixture in RAF-DB compound's native layout."""

from fermtl_tf.cli.prep import main
from fermtl_tf.data import tfrecord
from fermtl_tf.data.schema import decode_example
from fermtl_tf.data.synthface.layouts.raf_db_compound import write_raf_db_compound


def read(out):
    manifest = tfrecord.read_manifest(out)
    records = [{k: v.numpy() for k, v in decode_example(r, 0, 0).items()}
               for r in tfrecord.iter_records(out)]
    return manifest, {r["image_id"].decode(): r for r in records}


def test_compound_keeps_the_native_order_and_reports_a_label_outside_1_to_11(tmp_path):
    readme_order = ["happily_surprised", "happily_disgusted", "sadly_fearful", "sadly_angry",
                    "sadly_surprised", "sadly_disgusted", "fearfully_angry",
                    "fearfully_surprised", "angrily_surprised", "angrily_disgusted",
                    "disgustedly_surprised"]
    truth = write_raf_db_compound(tmp_path, plant_bad=True)
    out = tmp_path / "out"
    assert main(["raf_db_compound", "--root", str(tmp_path), "--out", str(out), "--quiet",
                 "--size", "64"]) == 0
    manifest, records = read(out)
    assert manifest["vocabularies"]["expression"] == readme_order
    assert all(readme_order[r["expression"]] == readme_order[truth[n]["label"] - 1]
               for n, r in records.items())
    assert [(s["input"], "1..11" in s["reason"]) for s in manifest["skipped"]] == [
        ("train_9999.jpg", True)]
