"""Write a SynthFace dataset: images, ``labels.csv`` (manifest CSV) and ``synthface.json``.

``labels.csv`` follows ``data_prep/README.md#manifest-csv``: one row per image with
``image_path`` (relative to the CSV), ``identity``, ``sequence_id``, ``frame_index``,
``split``, ``domain``, ``expression``, ``x0, y0, ... x67, y67`` (pixels, origin at the
top-left pixel corner), ``AU<n>[L|R]`` occurrence, ``AU<n>[L|R]_intensity``,
``valence``, ``arousal`` and ``attr_<name>``. No ``face_*`` columns are written, so
the prep step detects faces as it would on real data. Floats are written with
``repr``, so reading the CSV gives back the label values exactly.
"""

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.identity import SYNTHFACE_ATTRIBUTE_NAMES
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS


def csv_columns():
    """Column names of ``labels.csv`` in order."""
    landmarks = [f"{axis}{i}" for i in range(NUM_LANDMARKS) for axis in ("x", "y")]
    return (["image_path", "identity", "sequence_id", "frame_index", "split", "domain",
             "expression"] + landmarks + list(SYNTHFACE_AU_NAMES)
            + [f"{name}_intensity" for name in SYNTHFACE_AU_NAMES] + ["valence", "arousal"]
            + [f"attr_{name}" for name in SYNTHFACE_ATTRIBUTE_NAMES])


def _number(value):
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def csv_row(image_path, split, labels):
    """The CSV cells of one image, in :func:`csv_columns` order."""
    return ([image_path, str(labels["identity"]), labels["sequence_id"],
             str(labels["frame_index"]), split, labels["domain"], labels["expression"]]
            + [_number(v) for v in np.asarray(labels["landmarks"]).reshape(-1)]
            + [_number(v) for v in labels["au"]]
            + [_number(v) for v in labels["au_intensity"]]
            + [_number(labels["valence"]), _number(labels["arousal"])]
            + [_number(v) for v in labels["attributes"]])


def _encode(image_rgb, image_format):
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    ok, buf = cv2.imencode("." + image_format, bgr, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image_format} image")
    return buf.tobytes()


def generate_dataset(out_dir, config: SynthFaceConfig, progress=False):
    """Render every (identity, sequence, frame) of ``config`` into ``out_dir``.

    Returns counts: ``images``, ``identities``, ``sequences``, ``splits`` {name: images},
    ``expressions`` {name: images}.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    gen = SynthFaceGenerator(config)
    jobs = [(i, s) for i in range(config.num_identities)
            for s in range(config.sequences_per_identity)]
    if progress:
        from tqdm import tqdm

        jobs = tqdm(jobs, desc="SynthFace sequences", unit="seq")
    splits, expressions = Counter(), Counter()
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(csv_columns())
        for identity, sequence in jobs:
            split = gen.split_of(identity)
            folder = out / "images" / f"id{identity:04d}"
            folder.mkdir(exist_ok=True)
            for image, labels in gen.render_sequence(identity, sequence):
                name = f"s{sequence:02d}_f{labels['frame_index']:02d}.{config.image_format}"
                (folder / name).write_bytes(_encode(image, config.image_format))
                writer.writerow(csv_row(f"images/id{identity:04d}/{name}", split, labels))
                splits[split] += 1
                expressions[labels["expression"]] += 1
    meta = {"config": config.to_dict(), "vocabulary": list(gen.vocabulary),
            "classes": list(gen.classes), "au_names": list(SYNTHFACE_AU_NAMES),
            "attribute_names": list(SYNTHFACE_ATTRIBUTE_NAMES),
            "landmarks_units": "pixels, origin at the top-left pixel corner"}
    (out / "synthface.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {"images": sum(splits.values()), "identities": config.num_identities,
            "sequences": config.num_identities * config.sequences_per_identity,
            "splits": dict(sorted(splits.items())),
            "expressions": dict(sorted(expressions.items()))}
