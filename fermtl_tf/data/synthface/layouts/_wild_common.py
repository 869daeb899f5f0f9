"""Shared pieces of the list-file layout writers (RAF-DB, RAF-CE, AffectNet, CelebA,
LSEMSW, Multi-PIE): one seeded SynthFace render per image, image files, planted damage.
"""

import numpy as np

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.layouts._files import (  # noqa: F401 (re-exported)
    truncate,
    write_image,
)


def generator(seed, image_size, vocabulary="basic7", domain="wild"):
    return SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=image_size, domain=domain,
                                              vocabulary=vocabulary))


def render(gen, identity, expression, index):
    """One apex face of ``identity`` showing ``expression``, seeded by ``index``."""
    rng = np.random.default_rng([gen.config.seed, identity, index, 7])
    return gen.render(identity, expression, rng=rng)


def box_xywh(labels):
    """The rendered face box (x, y, w, h) in image pixels, rounded to 0.01 px."""
    return tuple(round(float(v), 2) for v in labels["face_box"])
