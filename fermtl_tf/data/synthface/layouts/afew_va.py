"""Write SynthFace clips in the AFEW-VA layout: ``<clip>/<frame>.png`` + ``<clip>/<clip>.json``.

The JSON holds ``actor``, ``video_id`` and per-frame ``valence``/``arousal`` (the rendered
values x 10, rounded to AFEW-VA's integers in -10..10) and the 68 ``landmarks`` in image
pixels. Two clips per actor.
"""

import json
import os

import cv2
import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.layouts._files import truncate


def write_afew_va(root, num_clips=4, frames=5, seed=0, size=64, plant_bad=False):
    """Write the fixture; return ``{"frames": {(clip, key): (valence, arousal, landmarks)}}``
    with valence/arousal as the integers written. ``plant_bad``: frame ``00002`` of the
    first clip is a truncated PNG."""
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames,
                                                   sequences_per_identity=2))
    truth = {"frames": {}, "actors": {}, "bad": []}
    for c in range(num_clips):
        clip, actor = f"{c + 1:03d}", c // 2
        folder = os.path.join(root, clip)
        os.makedirs(folder, exist_ok=True)
        entries = {}
        for f, (image, labels) in enumerate(generator.render_sequence(actor, c % 2)):
            key = f"{f:05d}"
            va = [int(np.clip(np.round(labels[k] * 10), -10, 10)) for k in ("valence", "arousal")]
            entries[key] = {"valence": va[0], "arousal": va[1],
                            "landmarks": np.round(labels["landmarks"], 3).tolist()}
            truth["frames"][(clip, key)] = (va[0], va[1], np.round(labels["landmarks"], 3))
            path = os.path.join(folder, f"{key}.png")
            cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if plant_bad and c == 0 and f == 2:
                truncate(path)
                truth["bad"].append((clip, key))
        truth["actors"][clip] = f"actor_{actor}"
        with open(os.path.join(folder, f"{clip}.json"), "w", encoding="utf-8") as handle:
            json.dump({"actor": f"actor_{actor}", "video_id": clip, "frames": entries}, handle)
    return truth
