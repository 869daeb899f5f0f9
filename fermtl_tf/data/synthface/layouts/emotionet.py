"""Write SynthFace images in the EmotioNet layout: a CSV of URLs + AU columns, and the
"downloaded" images named by the URLs' last path component.

AU cells are the rendered occurrences of the 11 challenge AUs; AU9 is 999 (unknown) on
every third row. The ``emotion`` column cycles through basic and compound categories,
written in EmotioNet's adjective style ("Happy", "Happily surprised").
"""

import csv
import os

import cv2
import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES

EMOTIONET_AUS = (1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26)
CATEGORIES = (("happiness", "Happy"), ("sadness", "Sad"), ("surprise", "Surprised"),
              ("happily_surprised", "Happily surprised"), ("fear", "Fearful"),
              ("sadly_angry", "Sadly angry"))


def write_emotionet(root, num_images=6, seed=0, size=128, plant_bad=False):
    """Write ``root/images/*.jpg`` and ``root/emotionet.csv``; return the truth per name.

    ``plant_bad``: one more row whose image was never downloaded.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size))
    columns = [SYNTHFACE_AU_NAMES.index(f"AU{n}") for n in EMOTIONET_AUS]
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    rows, truth = [], {"images": {}, "bad": []}
    for i in range(num_images):
        expression, category = CATEGORIES[i % len(CATEGORIES)]
        image, labels = generator.render(i, expression, rng=np.random.default_rng([seed, i]))
        name = f"face {i:03d}.jpg"
        cv2.imwrite(os.path.join(root, "images", name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        values = [int(labels["au"][c]) for c in columns]
        if i % 3 == 0:
            values[EMOTIONET_AUS.index(9)] = 999
        url = f"http://images.example.org/p/{i}/face%20{i:03d}.jpg?w=800"
        rows.append([url, *values, category])
        truth["images"][name] = {"aus": dict(zip(EMOTIONET_AUS, values, strict=True)),
                                 "expression": expression}
    if plant_bad:
        rows.append(["http://images.example.org/p/x/never_downloaded.jpg",
                     *([0] * len(EMOTIONET_AUS)), "Happy"])
        truth["bad"].append("never_downloaded.jpg")
    with open(os.path.join(root, "emotionet.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["URL", *(f"AU {n}" for n in EMOTIONET_AUS), "emotion"])
        writer.writerows(rows)
    return truth
