"""SynthFace in the 300-W layout: images beside 68-point ``.pts`` files, per part folder."""

import os

import numpy as np

from fermtl_tf.data.synthface.layouts import _lab_common as common

#: Part folders and the split the importer should give them.
W300_PARTS = {"afw": "train", "helen/trainset": "train", "lfpw/trainset": "train",
              "helen/testset": "common", "lfpw/testset": "common", "ibug": "challenging"}
EXPRESSIONS = ("neutral", "happiness", "surprise", "anger")


def write_pts(path, points, offset=0.5):
    """A 300-W ``.pts`` file; ``offset`` shifts to 1-based pixel centres (the 300-W convention)."""
    lines = ["version: 1", f"n_points:  {len(points)}", "{"]
    lines += [f"{x + offset:.3f} {y + offset:.3f}" for x, y in points]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines + ["}"]) + "\n")


def write_300w(root, images_per_part=2, image_size=96, seed=0, menpo_root=None,
               plant_bad=False):
    """Write every 300-W part with ``images_per_part`` faces; return the truth per image.

    Truth: list of dicts ``path`` (relative to its root), ``split``, ``landmarks`` (68, 2
    in this package's convention), ``bad``. ``menpo_root`` adds a Menpo-like folder with
    one 68-point face and one 39-point profile file (a skip). ``plant_bad`` writes a
    ``.pts`` with a non-numeric point for the first ibug image.
    """
    gen = common.generator(seed, image_size, domain="wild")
    truth, k = [], 0
    folders = [(root, part, split) for part, split in W300_PARTS.items()]
    if menpo_root is not None:
        folders.append((menpo_root, "trainset", "train"))
    for base, part, split in folders:
        for i in range(images_per_part):
            image, labels = gen.render(k, EXPRESSIONS[k % len(EXPRESSIONS)],
                                       rng=np.random.default_rng([seed, k]))
            stem = os.path.join(base, part, f"image_{i:04d}")
            ext = ".png" if part.startswith("lfpw") else ".jpg"
            common.write_image(stem + ext, image)
            points = labels["landmarks"]
            bad = None
            if base is menpo_root and i == 1:
                points, bad = points[:39], "39 points"
            write_pts(stem + ".pts", points)
            if plant_bad and part == "ibug" and i == 0:
                with open(stem + ".pts", encoding="utf-8") as handle:
                    lines = handle.read().split("\n")
                lines[3] = "12.5 oops"  # the first point
                with open(stem + ".pts", "w", encoding="utf-8") as handle:
                    handle.write("\n".join(lines))
                bad = "pts"
            truth.append({"path": os.path.relpath(stem + ext, base), "split": split,
                          "landmarks": labels["landmarks"], "bad": bad,
                          "menpo": base is menpo_root})
            k += 1
    return truth
