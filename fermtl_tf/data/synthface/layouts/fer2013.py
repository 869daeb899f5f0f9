"""SynthFace in the FER2013 layout: one ``fer2013.csv`` of 48x48 grey pixel strings."""

import csv
import os

import cv2
import numpy as np

from fermtl_tf.data.synthface.layouts import _lab_common as common

FER_CODE = {"anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4, "surprise": 5,
            "neutral": 6}
USAGES = ("Training", "PublicTest", "PrivateTest")


def write_fer2013(root, num_rows=9, seed=0, plant_bad=False):
    """Write ``root/fer2013.csv``; return the truth per data row (CSV line = index + 2).

    Faces are rendered at 96 px, their central 64 px cropped and shrunk to 48x48 grey.
    Truth: dicts ``expression``, ``usage``, ``pixels`` (48, 48) uint8, ``bad``.
    ``plant_bad`` gives the second row 2303 pixel values.
    """
    gen = common.generator(seed, 96)
    classes = list(FER_CODE)
    truth, rows = [], []
    for k in range(num_rows):
        expression, usage = classes[k % len(classes)], USAGES[k % len(USAGES)]
        image, _ = gen.render(k, expression, rng=np.random.default_rng([seed, k]))
        grey = cv2.cvtColor(image[16:80, 16:80], cv2.COLOR_RGB2GRAY)
        pixels = cv2.resize(grey, (48, 48), interpolation=cv2.INTER_AREA)
        values = [str(v) for v in pixels.ravel()]
        bad = None
        if plant_bad and k == 1:
            values, bad = values[:-1], "pixels"
        rows.append([FER_CODE[expression], " ".join(values), usage])
        truth.append({"expression": expression, "usage": usage, "pixels": pixels, "bad": bad})
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "fer2013.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)
    return truth
