"""SynthFace in the Oulu-CASIA NIR&VIS layout: OriginalImg/VL/Strong/P001/Anger/000.jpeg."""

import os

from fermtl_tf.data.synthface.layouts import _lab_common as common

OULU_EXPRESSIONS = {"Anger": "anger", "Disgust": "disgust", "Fear": "fear",
                    "Happiness": "happiness", "Sadness": "sadness", "Surprise": "surprise"}


def write_oulu_casia(root, num_subjects=2, expressions=("Anger", "Happiness", "Surprise"),
                     frames_per_sequence=4, image_size=96, seed=0, lighting="Strong",
                     plant_bad=False):
    """Write a VL fixture under ``root/OriginalImg/VL/<lighting>``; return the truth.

    Truth: list of dicts ``subject`` (``P001``...), ``folder``, ``expression``,
    ``frames`` (file names), ``bad`` (the truncated frame's name or None).
    ``plant_bad`` truncates the last frame of the first sequence.
    """
    gen = common.generator(seed, image_size)
    truth = []
    for s in range(num_subjects):
        for q, folder in enumerate(expressions):
            subject = f"P{s + 1:03d}"
            sequence = os.path.join(root, "OriginalImg", "VL", lighting, subject, folder)
            frames = common.render_sequence(gen, s, OULU_EXPRESSIONS[folder],
                                            frames_per_sequence, (q,))
            names = [f"{f:03d}.jpeg" for f in range(len(frames))]
            for name, (image, _) in zip(names, frames, strict=True):
                common.write_image(os.path.join(sequence, name), image)
            entry = {"subject": subject, "folder": folder, "frames": names, "bad": None,
                     "expression": OULU_EXPRESSIONS[folder]}
            if plant_bad and not truth:
                common.truncate(os.path.join(sequence, names[-1]))
                entry["bad"] = names[-1]
            truth.append(entry)
    return truth
