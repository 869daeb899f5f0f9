"""Write a SynthFace dataset in Multi-PIE's distributed tree or the fermtl-tf list format.

Tree: ``data/session0N/multiview/SSS/RR/CC_C/SSS_NN_RR_CCC_II.png`` for every
(session, recording) of the capture protocol and the given cameras and illuminations
(default 00 only). List: ``multipie.csv`` with ``image_path,subject,expression,view,
illumination,face_x,face_y,face_w,face_h`` over the same images. The face is always rendered frontal; only the camera
label differs. ``plant_bad`` truncates the first image.
"""

import csv
import os

from fermtl_tf.data.sources.multipie import RECORDING_EXPRESSIONS
from fermtl_tf.data.synthface.layouts._wild_common import (
    box_xywh,
    generator,
    render,
    truncate,
    write_image,
)

RENDERED = {"neutral": "neutral", "smile": "happiness", "surprise": "surprise",
            "squint": "neutral", "disgust": "disgust", "scream": "surprise"}


def write_multipie(root, num_subjects=2, seed=0, cameras=("05_1", "04_1", "20_0"),
                   layout="list", plant_bad=False, illuminations=(0,)):
    """Returns ``{image_path: {"subject", "expression", "camera", "illumination"}}`` of
    every image."""
    gen = generator(seed, 96)
    truth, rows = {}, []
    index = 0
    for subject in range(1, num_subjects + 1):
        for (session, recording), expression in sorted(RECORDING_EXPRESSIONS.items()):
            for camera in cameras:
                for flash in illuminations:
                    name = (f"{subject:03d}_{session:02d}_{recording:02d}_"
                            f"{camera.replace('_', '')}_{flash:02d}.png")
                    path = (f"data/session{session:02d}/multiview/{subject:03d}/"
                            f"{recording:02d}/{camera}/{name}")
                    image, labels = render(gen, subject, RENDERED[expression], index)
                    write_image(os.path.join(root, path), image)
                    x, y, w, h = box_xywh(labels)
                    rows.append([path, str(subject), expression, camera, flash, x, y, w, h])
                    truth[path] = {"subject": subject, "expression": expression,
                                   "camera": camera, "illumination": flash}
                    index += 1
    if plant_bad:
        truncate(os.path.join(root, rows[0][0]))
        truth[rows[0][0]]["truncated"] = True
    if layout == "list":
        with open(os.path.join(root, "multipie.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_path", "subject", "expression", "view", "illumination",
                             "face_x", "face_y", "face_w", "face_h"])
            writer.writerows(rows)
    return truth
