"""Write a SynthFace dataset in AffectNet's native layout.

``Manually_Annotated_file_lists/{training,validation}.csv`` (header
``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,
valence,arousal``; landmarks as 136 ``;``-separated values) and
``Manually_Annotated_Images/<n>/<name>.jpg``. Expression codes cycle over 0..10; codes
9 (uncertain) and 10 (no-face) get valence = arousal = -2 as in the distribution.
One training row (``violator``) is a happy face written with negative valence, which
FaceBehaviorNet's cleaning rule iv removes. ``plant_bad`` gives one row 134 landmark
values instead of 136.
"""

import csv
import os

import numpy as np

from fermtl_tf.data.synthface.layouts._wild_common import (
    box_xywh,
    generator,
    render,
    write_image,
)

HEADER = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
          "facial_landmarks", "expression", "valence", "arousal")
#: Native codes 0..10 and the SynthFace expression rendered for each.
CODE_EXPRESSIONS = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust",
                    "anger", "contempt", "neutral", "neutral", "neutral")
VIOLATOR = "1/violator.jpg"


def write_affectnet(root, num_subjects=4, seed=0, num_train=22, num_test=11, plant_bad=False):
    """Returns ``{subDirectory_filePath: {"code", "split", "valence", "arousal",
    "landmarks", "box"}}`` as written."""
    gen = generator(seed, 128, "basic8")
    truth = {}
    lists = os.path.join(root, "Manually_Annotated_file_lists")
    os.makedirs(lists, exist_ok=True)
    index = 0
    for split, stem, count in (("train", "training", num_train), ("test", "validation",
                                                                   num_test)):
        rows = []
        for k in range(count + (split == "train")):
            code = k % 11
            violator = split == "train" and k == count
            if violator:
                code = 1
            expression = CODE_EXPRESSIONS[code]
            image, labels = render(gen, index % num_subjects, expression, index)
            relative = VIOLATOR if violator else f"{index % 3}/{split}_{index:04d}.jpg"
            write_image(os.path.join(root, "Manually_Annotated_Images", relative), image)
            valence, arousal = labels["valence"], labels["arousal"]
            if violator:
                valence = -abs(valence) - 0.1
            if code >= 9:
                valence = arousal = -2.0
            points = np.round(labels["landmarks"], 3)
            cells = [f"{v:.3f}" for v in points.ravel()]
            if plant_bad and split == "train" and k == 3:
                cells = cells[:-2]
            x, y, w, h = box_xywh(labels)
            rows.append([relative, f"{x:.2f}", f"{y:.2f}", f"{w:.2f}", f"{h:.2f}",
                         ";".join(cells), str(code), f"{valence:.4f}", f"{arousal:.4f}"])
            truth[relative] = {"code": code, "split": split, "valence": round(valence, 4),
                               "arousal": round(arousal, 4), "landmarks": points,
                               "bad": len(cells) != 136}
            index += 1
        with open(os.path.join(lists, f"{stem}.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows(rows)
    return truth
