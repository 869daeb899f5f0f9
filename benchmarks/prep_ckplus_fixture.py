"""End-to-end preparation of a 2,000-image CK+-layout fixture: faces/s and where time goes.

Writes a SynthFace fixture in the CK+ layout (``write_ckplus``: 40 subjects x 5
sequences x 10 frames, 490x490 grey PNGs like CK+'s 640x490 frames in height), then runs
``fermtl-prep ckplus --frames all`` (every frame, so all 2,000 images are prepared) with
MTCNN detection (the default ``--crop-from detect``). Timing wrappers around the
orchestrator's stages split the run into: ``import`` (the ckplus importer: listing and
label files), ``decode`` (``read_image``), ``detector_build``, ``detection``
(``face.detect_faces``, batched), ``crop`` (``crop_and_resize``), ``encode`` (PNG of the
crop), ``serialise`` (``tf.train.Example``) and ``other`` (the rest: shard writing,
checksums, manifest). Prints one JSON object.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/prep_ckplus_fixture.py
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _wrap(owner, name, seconds, key):
    """Replace ``owner.name`` by a version that adds its run time to ``seconds[key]``."""
    original = getattr(owner, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            seconds[key] += time.perf_counter() - start

    setattr(owner, name, timed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--sequences", type=int, default=5)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=490)
    parser.add_argument("--crop-from", default="detect", choices=("detect", "landmarks"))
    parser.add_argument("--keep", help="keep the fixture and output in this folder")
    args = parser.parse_args()

    import tensorflow as tf

    from fermtl_tf.cli.prep import main as prep_main
    from fermtl_tf.data import face, prepare, schema
    from fermtl_tf.data.sources import ckplus
    from fermtl_tf.data.synthface.layouts.ckplus import write_ckplus

    folder = args.keep or tempfile.mkdtemp(prefix="prep_ckplus_")
    seconds = defaultdict(float)
    try:
        start = time.perf_counter()
        write_ckplus(os.path.join(folder, "raw"), num_subjects=args.subjects,
                     sequences_per_subject=args.sequences, frames_per_sequence=args.frames,
                     image_size=args.image_size, unlabelled_sequences=0)
        fixture_seconds = time.perf_counter() - start
        _wrap(ckplus.CKPlusSource, "load", seconds, "import")
        _wrap(prepare, "read_image", seconds, "decode")
        _wrap(face, "build_detector", seconds, "detector_build")
        _wrap(face, "detect_faces", seconds, "detection")
        _wrap(face, "crop_and_resize", seconds, "crop")
        _wrap(prepare, "encode_image", seconds, "encode")
        _wrap(schema, "encode_example", seconds, "serialise")
        out = os.path.join(folder, "out")
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        status = prep_main(["ckplus", "--root", os.path.join(folder, "raw"), "--out", out,
                            "--frames", "all", "--crop-from", args.crop_from, "--quiet"])
        total = time.perf_counter() - start
        with open(os.path.join(out, "manifest.json"), encoding="utf-8") as handle:
            counts = json.load(handle)["counts"]
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    stages = {k: round(v, 2) for k, v in sorted(seconds.items())}
    stages["other"] = round(total - sum(seconds.values()), 2)
    print(json.dumps({
        "benchmark": "prep_ckplus_fixture",
        "images": args.subjects * args.sequences * args.frames,
        "image_size": [args.image_size, args.image_size],
        "crop_from": args.crop_from,
        "exit_status": status,
        "counts": counts,
        "fixture_write_seconds": round(fixture_seconds, 2),
        "prepare_seconds": round(total, 2),
        "faces_per_second": round(counts["written"] / total, 2),
        "stage_seconds": stages,
        "stage_share": {k: round(v / total, 3) for k, v in stages.items()},
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
