"""Shared pieces of the list-file layout writers (RAF-DB, RAF-CE, AffectNet, CelebA,
LSEMSW, Multi-PIE): one seeded SynthFace render per image, image files, planted damage.
"""

import os

import cv2
import numpy as np

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator


def generator(seed, image_size, vocabulary="basic7", domain="wild"):
    return SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=image_size, domain=domain,
                                              vocabulary=vocabulary))


def render(gen, identity, expression, index):
    """One apex face of ``identity`` showing ``expression``, seeded by ``index``."""
    rng = np.random.default_rng([gen.config.seed, identity, index, 7])
    return gen.render(identity, expression, rng=rng)


def write_image(path, rgb):
    """JPEG or PNG by the file extension (JPEG quality 95)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith(".jpg") else []
    if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"cannot write {path}")


def truncate(path):
    """Cut a file to half its length: a planted truncated image."""
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


def box_xywh(labels):
    """The rendered face box (x, y, w, h) in image pixels, rounded to 0.01 px."""
    return tuple(round(float(v), 2) for v in labels["face_box"])
