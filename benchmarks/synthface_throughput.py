"""SynthFace rendering throughput on one core (OpenCV single-threaded).

Renders ``--n`` frames per domain through the dataset path (``render_sequence``: sequences
of ``--frames`` frames, so the per-sequence background is drawn once per sequence) and
reports images/s for rendering alone and for rendering + PNG encoding. Prints one JSON
object.

    python benchmarks/synthface_throughput.py --n 2000 --size 128
"""

import argparse
import json
import os
import time

import cv2
import numpy as np

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator


def measure(domain, n, size, frames, encode):
    frames_per_seq = frames
    cfg = SynthFaceConfig(seed=0, num_identities=max(1, n // frames_per_seq),
                          sequences_per_identity=1, frames_per_sequence=frames_per_seq,
                          domain=domain, image_size=size)
    gen = SynthFaceGenerator(cfg)
    gen.render_sequence(0, 0)  # warm-up: imports, caches
    start = time.perf_counter()
    count = 0
    for identity in range(cfg.num_identities):
        for image, _ in gen.render_sequence(identity, 0):
            if encode:
                cv2.imencode(".png", image)
            count += 1
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per measurement")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=3, help="frames per sequence")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    results = {}
    for domain in ("lab", "wild"):
        results[domain] = {
            "render_images_per_s": round(measure(domain, args.n, args.size, args.frames, False), 1),
            "render_png_images_per_s": round(measure(domain, args.n, args.size, args.frames, True),
                                             1),
        }
    print(json.dumps({"benchmark": "synthface_throughput", "image_size": args.size,
                      "n": args.n, "frames_per_sequence": args.frames, "cv2_threads": 1,
                      "numpy": np.__version__, "opencv": cv2.__version__,
                      "cpu_count": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
