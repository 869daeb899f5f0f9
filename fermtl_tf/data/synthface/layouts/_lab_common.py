"""Shared pieces of the lab-benchmark layout writers (CK+, Oulu-CASIA, MMI, 300-W, SFEW).

A native sequence is rendered frame by frame with :meth:`SynthFaceGenerator.render`
from the same per-sequence seed, so every frame shares the identity, scene and AU
draw and only the neutral-to-apex ``ramp`` changes (smoothstep, as in SynthFace).
"""

import os

import cv2
import numpy as np

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import ramp as smooth_ramp


def generator(seed, image_size, domain="lab", vocabulary="basic8"):
    return SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=image_size, domain=domain,
                                              vocabulary=vocabulary))


def render_sequence(gen, identity, expression, num_frames, key):
    """``num_frames`` (image, labels) pairs going from neutral to the apex of ``expression``."""
    frames = []
    for f in range(num_frames):
        rng = np.random.default_rng([gen.config.seed, identity, *key])
        frames.append(gen.render(identity, expression, rng=rng,
                                 ramp=smooth_ramp(f, num_frames)))
    return frames


def write_image(path, rgb, grey=False):
    """PNG/JPEG by extension; ``grey`` stores one channel like CK+'s grey frames."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grey else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(path, pixels):
        raise OSError(f"cannot write {path}")


def truncate(path):
    """Cut a file to half its length: the importer's planted bad image."""
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])


def bilateral_aus(labels):
    """``{AU number: intensity}`` of the active AUs without a side suffix (FACS-style)."""
    from fermtl_tf.data.synthface import SYNTHFACE_AU_NAMES

    result = {}
    for name, on, strength in zip(SYNTHFACE_AU_NAMES, labels["au"], labels["au_intensity"],
                                  strict=True):
        if on and name[-1].isdigit():
            result[int(name[2:])] = float(min(5, max(1, round(float(strength)))))
    return result
