"""Write a SynthFace dataset in CelebA's native layout.

``list_attr_celeba.txt`` (count, the 40 CelebA attribute names, rows of ±1),
``identity_CelebA.txt``, ``list_eval_partition.txt`` (identities are split
subject-independently, as in CelebA), ``list_bbox_celeba.txt`` and both image folders:
``img_align_celeba/`` (89x109 crops, half CelebA's 178x218) and ``img_celeba/`` (128x128).
Attributes shared with SynthFace (male, eyeglasses, smiling, ...) come from the render;
the others are seeded coin flips. ``plant_bad`` truncates the second image.
"""

import os

import numpy as np

from fermtl_tf.data.synthface import SYNTHFACE_ATTRIBUTE_NAMES
from fermtl_tf.data.synthface.layouts._wild_common import (
    box_xywh,
    generator,
    render,
    truncate,
    write_image,
)

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
#: CelebA attribute -> SynthFace attribute it is read from.
FROM_SYNTHFACE = {"Bald": "bald", "Big_Nose": "big_nose", "Black_Hair": "black_hair",
                  "Blond_Hair": "blond_hair", "Brown_Hair": "brown_hair",
                  "Bushy_Eyebrows": "bushy_eyebrows", "Eyeglasses": "eyeglasses",
                  "Gray_Hair": "gray_hair", "Male": "male", "Mouth_Slightly_Open": "mouth_open",
                  "Mustache": "mustache", "Narrow_Eyes": "narrow_eyes", "Pale_Skin": "pale_skin",
                  "Smiling": "smiling"}
_EXPRESSIONS = ("neutral", "happiness", "surprise", "sadness")


def _attributes(labels, rng):
    values = dict(zip(SYNTHFACE_ATTRIBUTE_NAMES, labels["attributes"], strict=True))
    coins = rng.random(len(CELEBA_ATTRIBUTES)) < 0.5
    return [1 if (values[FROM_SYNTHFACE[n]] if n in FROM_SYNTHFACE else coins[k]) else -1
            for k, n in enumerate(CELEBA_ATTRIBUTES)]


def write_celeba(root, num_subjects=6, seed=0, images_per_subject=4, plant_bad=False):
    """Returns ``{image: {"identity": celeb id, "partition": 0/1/2, "attributes": ±1}}``."""
    aligned, wild = generator(seed, 109), generator(seed, 128)
    rng = np.random.default_rng([seed, 40])
    truth, attr_rows, id_rows, part_rows, box_rows = {}, [], [], [], []
    for subject in range(num_subjects):
        celeb_id = 100 + 7 * subject  # CelebA ids are sparse-looking integers
        partition = (0, 0, 0, 0, 1, 2)[subject % 6]
        for k in range(images_per_subject):
            index = subject * images_per_subject + k
            name = f"{index + 1:06d}.jpg"
            expression = _EXPRESSIONS[index % len(_EXPRESSIONS)]
            image, labels = render(aligned, subject, expression, index)
            write_image(os.path.join(root, "img_align_celeba", name), image[:, 10:99])
            image, wild_labels = render(wild, subject, expression, index)
            write_image(os.path.join(root, "img_celeba", name), image)
            values = _attributes(labels, rng)
            attr_rows.append(name + " " + " ".join(f"{v:2d}" for v in values))
            id_rows.append(f"{name} {celeb_id}")
            part_rows.append(f"{name} {partition}")
            x, y, w, h = (int(round(v)) for v in box_xywh(wild_labels))
            box_rows.append(f"{name} {x} {y} {w} {h}")
            truth[name] = {"identity": celeb_id, "partition": partition,
                           "attributes": values}
    _write(root, "list_attr_celeba.txt",
           [str(len(attr_rows)), " ".join(CELEBA_ATTRIBUTES)] + attr_rows)
    _write(root, "identity_CelebA.txt", id_rows)
    _write(root, "list_eval_partition.txt", part_rows)
    _write(root, "list_bbox_celeba.txt",
           [str(len(box_rows)), "image_id x_1 y_1 width height"] + box_rows)
    if plant_bad:
        truncate(os.path.join(root, "img_align_celeba", "000002.jpg"))
        truncate(os.path.join(root, "img_celeba", "000002.jpg"))
    return truth


def _write(root, name, lines):
    with open(os.path.join(root, name), "w") as handle:
        handle.write("\n".join(lines) + "\n")
