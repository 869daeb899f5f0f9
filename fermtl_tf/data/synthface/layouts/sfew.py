"""SynthFace in the SFEW 2.0 layout: Train|Val/<Class>/*.png (+ aligned face crops)."""

import os

import numpy as np

from fermtl_tf.data.synthface.layouts import _lab_common as common

SFEW_CLASSES = {"Angry": "anger", "Disgust": "disgust", "Fear": "fear", "Happy": "happiness",
                "Neutral": "neutral", "Sad": "sadness", "Surprise": "surprise"}


def write_sfew(root, classes=("Angry", "Happy", "Neutral"), images_per_class=1, image_size=96,
               seed=0, aligned=False, plant_bad=False):
    """Write Train/ and Val/ (and ``<split>/<split>_Aligned_Faces/`` crops when ``aligned``).

    The aligned crop is the central half of the frame. Truth: list of dicts ``path``
    (relative, of the frame; ``aligned_path`` of the crop), ``split`` (train/test),
    ``expression``, ``bad``. ``plant_bad`` truncates the first Val frame (and crop).
    """
    gen = common.generator(seed, image_size, domain="wild")
    truth, k = [], 0
    for folder, split in (("Train", "train"), ("Val", "test")):
        for name in classes:
            for _ in range(images_per_class):
                rng = np.random.default_rng([seed, k])
                image, _ = gen.render(k, SFEW_CLASSES[name], rng=rng)
                stem = f"{folder}/{name}/{folder.lower()}_{k:04d}.png"
                crop = f"{folder}/{folder}_Aligned_Faces/{name}/{folder.lower()}_{k:04d}.png"
                common.write_image(os.path.join(root, stem), image)
                quarter = image_size // 4
                if aligned:
                    common.write_image(os.path.join(root, crop),
                                       image[quarter:-quarter, quarter:-quarter])
                entry = {"path": stem, "aligned_path": crop, "split": split,
                         "expression": SFEW_CLASSES[name], "bad": None}
                if plant_bad and folder == "Val" and not any(t["bad"] for t in truth):
                    common.truncate(os.path.join(root, stem))
                    if aligned:
                        common.truncate(os.path.join(root, crop))
                    entry["bad"] = "image"
                truth.append(entry)
                k += 1
    return truth
