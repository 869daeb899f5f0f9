"""MTCNN detection rate on SynthFace faces, per rendering domain and intensity.

Runs mtcnn 1.0.0 ``MTCNN()`` with its default settings on ``--n`` generated faces per
(domain, intensity) cell. A face counts as found when the detection with the highest
confidence has IoU >= 0.5 with the true face box (landmark box extended to the
forehead, ``labels["face_box"]``); ``any_box_rate`` also accepts any detected box.
mtcnn looks its weight files up in the current directory first, so the script runs
from a fresh temporary directory. Prints one JSON object.

    python benchmarks/synthface_detection.py --n 200
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator  # noqa: E402
from fermtl_tf.knowledge.vocabularies import vocabulary  # noqa: E402


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def measure(detector, domain, intensity, n, size, seed, vocabulary_name):
    classes = vocabulary(vocabulary_name)
    gen = SynthFaceGenerator(SynthFaceConfig(seed=seed, domain=domain, image_size=size,
                                             vocabulary=vocabulary_name))
    scale = {"strong": 1.0, "subtle": 1.0 / 3.0}[intensity]
    found = found_any = 0
    ious, misses = [], []
    for i in range(n):
        expression = classes[i % len(classes)]
        image, labels = gen.render(i, expression, scale, np.random.default_rng([seed, i, 5]))
        faces = detector.detect_faces(image)
        if faces:
            best = max(faces, key=lambda f: f["confidence"])
            best_iou = iou(best["box"], labels["face_box"])
            max_iou = max(iou(f["box"], labels["face_box"]) for f in faces)
        else:
            best_iou = max_iou = 0.0
        ious.append(best_iou)
        found += best_iou >= 0.5
        found_any += max_iou >= 0.5
        if best_iou < 0.5:
            misses.append({"identity": i, "expression": expression, "iou": round(best_iou, 3)})
    return {"n": n, "rate": found / n, "any_box_rate": found_any / n,
            "median_iou": float(np.median(ious)), "misses": misses[:20]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="faces per domain x intensity")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default="lab,wild")
    parser.add_argument("--intensities", default="strong,subtle")
    parser.add_argument("--vocabulary", default="basic8", help="classes cycled over the faces")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="synthface_mtcnn_"))
    from mtcnn import MTCNN

    detector = MTCNN()
    start = time.perf_counter()
    results = {f"{d}/{i}": measure(detector, d, i, args.n, args.size, args.seed, args.vocabulary)
               for d in args.domains.split(",") for i in args.intensities.split(",")}
    total = sum(r["rate"] * r["n"] for r in results.values())
    count = sum(r["n"] for r in results.values())
    print(json.dumps({"benchmark": "synthface_detection", "detector": "mtcnn 1.0.0 MTCNN()",
                      "image_size": args.size, "seed": args.seed, "iou_threshold": 0.5,
                      "vocabulary": args.vocabulary,
                      "overall_rate": total / count, "cells": results,
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
