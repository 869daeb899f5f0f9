"""Shared pieces of the lab-benchmark layout writers (CK+, Oulu-CASIA, MMI, 300-W, SFEW).

A native sequence is rendered frame by frame with :meth:`SynthFaceGenerator.render`
from the same per-sequence seed, so every frame shares the identity, scene and AU
draw and only the neutral-to-apex ``ramp`` changes (smoothstep, as in SynthFace).
"""

import numpy as np

from fermtl_tf.data.synthface import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import ramp as smooth_ramp
from fermtl_tf.data.synthface.layouts._files import (  # noqa: F401 (re-exported)
    truncate,
    write_image,
)


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


def bilateral_aus(labels):
    """``{AU number: intensity}`` of the active AUs without a side suffix (FACS-style)."""
    from fermtl_tf.data.synthface import SYNTHFACE_AU_NAMES

    result = {}
    for name, on, strength in zip(SYNTHFACE_AU_NAMES, labels["au"], labels["au_intensity"],
                                  strict=True):
        if on and name[-1].isdigit():
            result[int(name[2:])] = float(min(5, max(1, round(float(strength)))))
    return result
