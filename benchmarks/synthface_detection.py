"""MTCNN detection rate on SynthFace faces, per rendering domain and intensity.

Runs mtcnn 1.0.0 with its default settings through the preparation path
(``fermtl_tf.data.face.detect_faces``: bundled weights, ``--batch-size`` images per call,
as ``fermtl-prep`` does; batch composition changes confidences slightly) on ``--n``
apex faces per (domain, intensity) cell, the classes of ``--vocabulary`` cycled.
Face ``i`` shows identity ``i % --identities``. Per cell it reports

* ``rate``: the detection with the highest confidence, at any confidence, has
  IoU >= 0.5 with the true face box (landmark box extended to the forehead,
  ``labels["face_box"]``); ``any_box_rate`` accepts any detected box;
* ``kept_rate``: what preparation keeps -- among detections with confidence >=
  ``--min-confidence`` (prep's default 0.9) the face :func:`~fermtl_tf.data.face.choose_face`
  picks exists and has IoU >= 0.5 with the true box.

Prints one JSON object.

    python benchmarks/synthface_detection.py --n 200 --vocabulary basic7
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from fermtl_tf.data import face  # noqa: E402
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


def box_iou(detection, face_box):
    """IoU of a :class:`~fermtl_tf.data.face.Detection` (x0, y0, x1, y1) with an (x, y, w, h)."""
    x0, y0, x1, y1 = detection.box
    return iou((x0, y0, x1 - x0, y1 - y0), face_box)


def render_cell(domain, intensity, args):
    """The cell's ``(image, labels)`` pairs: apex faces, identity ``i % identities``."""
    classes = vocabulary(args.vocabulary)
    gen = SynthFaceGenerator(SynthFaceConfig(seed=args.seed, domain=domain, image_size=args.size,
                                             vocabulary=args.vocabulary))
    scale = {"strong": 1.0, "subtle": 1.0 / 3.0}[intensity]
    return [gen.render(i % args.identities, classes[i % len(classes)], scale,
                       np.random.default_rng([args.seed, i, 5])) for i in range(args.n)]


def measure(detector, domain, intensity, args):
    faces = render_cell(domain, intensity, args)
    images = [image for image, _ in faces]
    found = face.detect_faces(images, 0.0, args.batch_size, detector)
    best_hit = any_hit = kept = 0
    ious, misses = [], []
    for (image, labels), detections in zip(faces, found, strict=True):
        box = labels["face_box"]
        best = max(detections, key=lambda d: d.confidence, default=None)
        best_iou = box_iou(best, box) if best else 0.0
        confident = [d for d in detections if d.confidence >= args.min_confidence]
        chosen = face.choose_face(confident, image.shape)
        ious.append(best_iou)
        best_hit += best_iou >= 0.5
        any_hit += any(box_iou(d, box) >= 0.5 for d in detections)
        if chosen is not None and box_iou(chosen, box) >= 0.5:
            kept += 1
        else:
            misses.append({"identity": labels["identity"], "expression": labels["expression"],
                           "confidence": round(best.confidence, 3) if best else None,
                           "iou": round(best_iou, 3)})
    n = len(faces)
    return {"n": n, "identities": len({labels["identity"] for _, labels in faces}),
            "rate": best_hit / n, "any_box_rate": any_hit / n, "kept_rate": kept / n,
            "median_iou": float(np.median(ious)), "misses": misses[:20]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="faces per domain x intensity")
    parser.add_argument("--identities", type=int, default=200, help="distinct identities")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default="lab,wild")
    parser.add_argument("--intensities", default="strong,subtle")
    parser.add_argument("--vocabulary", default="basic8", help="classes cycled over the faces")
    parser.add_argument("--min-confidence", type=float, default=0.9, help="prep's cut-off")
    parser.add_argument("--batch-size", type=int, default=16, help="prep's detection batch")
    args = parser.parse_args()
    detector = face.build_detector()
    start = time.perf_counter()
    results = {f"{d}/{i}": measure(detector, d, i, args)
               for d in args.domains.split(",") for i in args.intensities.split(",")}
    count = sum(r["n"] for r in results.values())

    def overall(key):
        return sum(r[key] * r["n"] for r in results.values()) / count

    print(json.dumps({"benchmark": "synthface_detection",
                      "detector": "mtcnn 1.0.0 default settings, fermtl_tf.data.face.detect_faces",
                      "image_size": args.size, "seed": args.seed, "iou_threshold": 0.5,
                      "vocabulary": args.vocabulary, "min_confidence": args.min_confidence,
                      "batch_size": args.batch_size,
                      "overall_rate": overall("rate"), "overall_kept_rate": overall("kept_rate"),
                      "min_kept_rate": min(r["kept_rate"] for r in results.values()),
                      "cells": results, "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
