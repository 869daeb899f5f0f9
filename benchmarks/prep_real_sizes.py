"""Preparation on real photo sizes: speed on 1920x1080 frames, peak memory on 12000x12000.

SynthFace faces (synthetic) rendered at 720 px and placed in 1920x1080 JPEG frames,
prepared with ``--crop-from detect`` twice in one process:

* ``old``: the path before issue 13 -- MTCNN on the full-resolution frame, one process
  (``detect_max_side=0, workers=1``);
* ``new_one_process``: MTCNN on a copy capped at 640 px (the default), crop from the
  full frame, one process;
* ``new_pool``: the same with ``--workers`` processes (default: every usable CPU) and
  ``--detect-batch-size 4``, so the frames make several chunks to share; the workers'
  start (TensorFlow + MTCNN each) is included.

MTCNN is built and warmed up in this process first, so ``old`` and ``new_one_process``
time preparation alone. It reports images/s, ratios to ``old``, and whether the same
faces were found (per image: both found one, and the IoU of the two ``face_box``
records). Then, in child processes (``fermtl-prep manifest``, one worker), the peak
resident memory (``VmHWM`` of the child itself) of preparing one 12000x12000 PNG (an
upscaled face), of one 1920x1080 frame (TensorFlow + MTCNN alone), and of a
20000x20000 PNG header that the pixel budget refuses before decoding. Prints one JSON
object.

    python benchmarks/prep_real_sizes.py --frames 24
    python benchmarks/prep_real_sizes.py --frames 0 --pool-frames 160 --skip-memory
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def render_faces(count, size, seed=0):
    from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator

    gen = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size, domain="wild"))
    return [gen.render(i % 7, "happiness", rng=np.random.default_rng([seed, i]))[0]
            for i in range(count)]


def write_csv(folder, names, file_name="labels.csv"):
    path = os.path.join(folder, file_name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("image_path\n" + "\n".join(names) + "\n")
    return path


def write_frames(folder, count):
    """``count`` 1920x1080 JPEG frames, a 720-px face at a varying place in each."""
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    names = []
    for i, face in enumerate(render_faces(count, 720)):
        frame = np.full((1080, 1920, 3), 90, np.uint8)
        x = 100 + (i * 137) % 1000
        frame[180:900, x : x + 720] = face
        names.append(f"images/{i:03d}.jpg")
        cv2.imwrite(os.path.join(folder, names[-1]), frame[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
    return write_csv(folder, names)


def face_boxes(out):
    """``{image_id: face_box}`` of a prepared folder."""
    from fermtl_tf.data import tfrecord
    from fermtl_tf.data.schema import decode_example

    manifest = tfrecord.read_manifest(out)
    boxes = {}
    for serialized in tfrecord.iter_records(out):
        record = decode_example(serialized, manifest["num_aus"], manifest["num_attributes"])
        boxes[record["image_id"].numpy().decode()] = record["face_box"].numpy()
    return boxes


def speed(work, frames, workers):
    from fermtl_tf.data.face import box_iou
    from fermtl_tf.data.prepare import PrepOptions, prepare_dataset
    from fermtl_tf.data.sources.manifest_csv import load_manifest_csv

    csv_path = write_frames(os.path.join(work, "frames"), frames)
    warm = write_csv(os.path.join(work, "frames"), ["images/000.jpg"], "warm-up.csv")
    prepare_dataset(load_manifest_csv(warm), os.path.join(work, "warm"),
                    PrepOptions(quiet=True, workers=1))
    paths = {"old": dict(detect_max_side=0, workers=1),
             "new_one_process": dict(workers=1),
             "new_pool": dict(workers=workers, detect_batch_size=4)}
    result, boxes = {}, {}
    for name, overrides in paths.items():
        out = os.path.join(work, f"out_{name}")
        options = PrepOptions(quiet=True, **overrides)
        started = time.perf_counter()
        manifest = prepare_dataset(load_manifest_csv(csv_path), out, options)
        seconds = time.perf_counter() - started
        boxes[name] = face_boxes(out)
        result[name] = {"seconds": round(seconds, 2),
                        "images_per_s": round(frames / seconds, 3),
                        "written": manifest["counts"]["written"], "options": overrides}
    for name in ("new_one_process", "new_pool"):
        result[name]["speedup_vs_old"] = round(
            result[name]["images_per_s"] / result["old"]["images_per_s"], 2)
    both = sorted(set(boxes["old"]) & set(boxes["new_one_process"]))
    ious = [box_iou(boxes["old"][k], boxes["new_one_process"][k]) for k in both]
    result["faces_old_vs_new"] = {
        "found_by_both": len(both),
        "only_old": sorted(set(boxes["old"]) - set(boxes["new_one_process"])),
        "only_new": sorted(set(boxes["new_one_process"]) - set(boxes["old"])),
        "min_iou": round(min(ious), 3) if ious else None,
        "mean_iou": round(float(np.mean(ious)), 3) if ious else None,
        "pool_boxes_equal_one_process": all(
            np.array_equal(boxes["new_pool"].get(k, -1), boxes["new_one_process"][k])
            for k in boxes["new_one_process"]),
    }
    return result


def pool_speed(work, frames, workers):
    """One process vs a pool on ``frames`` frames, capped-copy detection in both: the
    pool's gain once its workers' start is spread over a longer run."""
    from fermtl_tf.data.prepare import PrepOptions, prepare_dataset
    from fermtl_tf.data.sources.manifest_csv import load_manifest_csv

    csv_path = write_frames(os.path.join(work, "pool_frames"), frames)
    result = {}
    for name, count in (("one_process", 1), ("pool", workers)):
        options = PrepOptions(quiet=True, workers=count)
        started = time.perf_counter()
        prepare_dataset(load_manifest_csv(csv_path), os.path.join(work, f"pool_{name}"),
                        options)
        seconds = time.perf_counter() - started
        result[name] = {"workers": count, "seconds": round(seconds, 2),
                        "images_per_s": round(frames / seconds, 3)}
    result["pool_speedup"] = round(result["pool"]["images_per_s"]
                                   / result["one_process"]["images_per_s"], 2)
    same = all(
        open(os.path.join(work, "pool_one_process", n), "rb").read()
        == open(os.path.join(work, "pool_pool", n), "rb").read()
        for n in sorted(os.listdir(os.path.join(work, "pool_one_process"))))
    result["identical_files"] = same
    return result


def _png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


#: Runs fermtl-prep in the child, then prints the child's own peak RSS. ``ru_maxrss``
#: would not do: after fork + exec it starts from the parent's resident size.
_CHILD = """import sys
from fermtl_tf.cli.prep import main
status = main(sys.argv[1:])
with open("/proc/self/status") as handle:
    print([line.split()[1] for line in handle if line.startswith("VmHWM")][0])
sys.exit(status)
"""


def peak_memory(folder, image_name):
    """Peak RSS (MB) and seconds of ``fermtl-prep manifest`` on one image, in a child."""
    csv_path = write_csv(folder, [image_name], image_name + ".csv")
    out = os.path.join(folder, "out_" + image_name.replace(".", "_"))
    command = [sys.executable, "-c", _CHILD, "manifest", "--csv", csv_path, "--out", out,
               "--quiet", "--workers", "1"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    peak_kb = int(done.stdout.split()[-1])
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    return {"peak_rss_mb": round(peak_kb / 1024, 1), "seconds": round(seconds, 2),
            "written": manifest["counts"]["written"],
            "skipped": [s["reason"] for s in manifest["skipped"]]}


def memory(work, side):
    folder = os.path.join(work, "large")
    os.makedirs(folder)
    face = render_faces(1, 1024)[0]
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    frame[28:1052, 448:1472] = face
    cv2.imwrite(os.path.join(folder, "frame.jpg"), frame[..., ::-1])
    huge = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
    cv2.imwrite(os.path.join(folder, "huge.png"), huge[..., ::-1],
                [cv2.IMWRITE_PNG_COMPRESSION, 1])
    del huge
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    with open(os.path.join(folder, "refused.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", b"") + _png_chunk(b"IEND", b""))
    return {
        "refused_20000x20000_png_header": peak_memory(folder, "refused.png"),
        "frame_1920x1080_jpeg": peak_memory(folder, "frame.jpg"),
        f"photo_{side}x{side}_png": dict(
            peak_memory(folder, "huge.png"),
            file_mb=round(os.path.getsize(os.path.join(folder, "huge.png")) / 2**20, 1)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=16,
                        help="1920x1080 frames for old vs new (0: skip)")
    parser.add_argument("--pool-frames", type=int, default=0,
                        help="frames for one process vs the pool (0: skip)")
    parser.add_argument("--workers", type=int, default=0, help="workers of the new path (0: CPUs)")
    parser.add_argument("--side", type=int, default=12000, help="side of the large PNG")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    from fermtl_tf.data.shard_builder import resolve_workers

    workers = args.workers or resolve_workers(0, 10**9)
    work = tempfile.mkdtemp(prefix="prep_real_sizes_")
    result = {"benchmark": "prep_real_sizes", "data": "SynthFace (synthetic faces)",
              "cpus": resolve_workers(0, 10**9)}
    if args.frames:
        result["speed_1920x1080"] = dict(frames=args.frames,
                                         **speed(work, args.frames, workers))
    if args.pool_frames:
        result["pool_1920x1080"] = dict(frames=args.pool_frames,
                                        **pool_speed(work, args.pool_frames, workers))
    if not args.skip_memory:
        result["memory"] = memory(work, args.side)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
