"""Write a SynthFace dataset in the LSEMSW CSV format defined by fermtl-tf (data_prep/lsemsw.md).

``lsemsw.csv`` (``image_path,expression,group``) and ``images/<group>/<n>.png``, the
13 LSEMSW classes cycled (SynthFace renders every one of them). ``plant_bad`` adds a row
whose expression ``bored`` is not an LSEMSW class.
"""

import csv
import os

from fermtl_tf.data.synthface.layouts._wild_common import generator, render, write_image
from fermtl_tf.knowledge.vocabularies import LSEMSW13


def write_lsemsw(root, num_subjects=4, seed=0, num_images=10, num_groups=5, plant_bad=False):
    """Returns ``{image_path: {"expression": name, "group": g}}``."""
    gen = generator(seed, 112, "lsemsw13")
    truth, rows = {}, []
    for index in range(num_images):
        expression = LSEMSW13[index % len(LSEMSW13)]
        group = f"movie{index % num_groups:02d}"
        path = f"images/{group}/{index:05d}.png"
        image, _ = render(gen, index % num_subjects, expression, index)
        write_image(os.path.join(root, path), image)
        rows.append([path, expression.capitalize(), group])
        truth[path] = {"expression": expression, "group": group}
    if plant_bad:
        rows.append([rows[0][0], "bored", rows[0][2]])
    with open(os.path.join(root, "lsemsw.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "expression", "group"])
        writer.writerows(rows)
    return truth
