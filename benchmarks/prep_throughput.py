"""Preparation throughput (faces/s): batched MTCNN vs a per-image loop, same images.

Generates a small SynthFace set once, then times, on the same images:

* ``prepare_batched``: the whole ``prepare_dataset`` (read, detect, crop, encode, write)
  with batched detection (``--detect-batch-size``, default 16);
* ``prepare_per_image``: the same with ``detect_batch_size=1``;
* ``mtcnn_loop``: detection only, the plain per-image ``MTCNN.detect_faces(image)`` loop
  a user would write; ``detect_batched``: detection only through ``face.detect_faces``.

The detector is built (and warmed up) before any timing. Prints one JSON object.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/prep_throughput.py --images 48
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="approximate number of faces")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()

    import tensorflow as tf

    from fermtl_tf.data import face
    from fermtl_tf.data.image_io import read_image
    from fermtl_tf.data.prepare import PrepOptions, prepare_dataset
    from fermtl_tf.data.sources.manifest_csv import load_manifest_csv
    from fermtl_tf.data.synthface import SynthFaceConfig, generate_dataset

    work = tempfile.mkdtemp(prefix="prep_throughput_")
    try:
        identities = max(1, args.images // 6)
        config = SynthFaceConfig(seed=0, num_identities=identities, sequences_per_identity=2,
                                 frames_per_sequence=3, image_size=args.image_size)
        generate_dataset(os.path.join(work, "raw"), config)
        csv_path = os.path.join(work, "raw", "labels.csv")
        dataset = load_manifest_csv(csv_path)
        images = [read_image(item.image_path) for item in dataset.inputs]
        detector = face.build_detector()
        face.detect_faces(images[:2], batch_size=2, detector=detector)  # warm-up

        result = {"benchmark": "prep_throughput", "images": len(images),
                  "image_size": args.image_size, "batch_size": args.batch_size}
        for name, batch in (("prepare_batched", args.batch_size), ("prepare_per_image", 1)):
            options = PrepOptions(detect_batch_size=batch, quiet=True, overwrite=True)
            out = os.path.join(work, name)
            manifest, seconds = _timed(lambda o=options, d=out: prepare_dataset(
                load_manifest_csv(csv_path), d, o))
            result[name] = {"seconds": round(seconds, 3),
                            "faces_per_s": round(manifest["counts"]["written"] / seconds, 2),
                            "written": manifest["counts"]["written"]}
        floats = [image.astype("float32") for image in images]
        _, loop_s = _timed(lambda: [detector.detect_faces(image) for image in floats])
        _, batched_s = _timed(lambda: face.detect_faces(images, batch_size=args.batch_size,
                                                        detector=detector))
        result["mtcnn_loop"] = {"seconds": round(loop_s, 3),
                                "images_per_s": round(len(images) / loop_s, 2)}
        result["detect_batched"] = {"seconds": round(batched_s, 3),
                                    "images_per_s": round(len(images) / batched_s, 2)}
        result["speedup_prepare"] = round(result["prepare_per_image"]["seconds"]
                                          / result["prepare_batched"]["seconds"], 2)
        result["speedup_detection"] = round(loop_s / batched_s, 2)
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "tensorflow": tf.__version__,
                             "gpus": len(tf.config.list_physical_devices("GPU"))}
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
