"""SynthFace in the BU-4DFE layout: F001/Angry/000.jpg (+ 000.wrl) and BU_WrlViewer_V2/."""

import os

from fermtl_tf.data.synthface.layouts import _lab_common as common

BU4DFE_EXPRESSIONS = {"Angry": "anger", "Disgust": "disgust", "Fear": "fear",
                      "Happy": "happiness", "Sad": "sadness", "Surprise": "surprise"}


def _touch(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_bu4dfe(root, subjects=("F001", "M001"), expressions=tuple(BU4DFE_EXPRESSIONS),
                 frames_per_sequence=4, image_size=96, seed=0, plant_bad=False):
    """Write a BU-4DFE fixture under ``root``; return the truth per sequence.

    Each ``<subject>/<Expression>/`` folder holds ``000.jpg`` ... (neutral to apex) and a
    stand-in ``000.wrl`` 3D model per frame; ``BU_WrlViewer_V2/`` holds a stand-in viewer.
    ``plant_bad`` truncates the last frame of the first sequence and leaves a stray
    ``notes.txt`` in it. Truth: dicts ``subject``, ``folder``, ``expression``, ``frames``
    (file names), ``bad`` (the truncated frame's name or None), ``stray`` (the stray
    file's name or None).
    """
    gen = common.generator(seed, image_size)
    _touch(os.path.join(root, "BU_WrlViewer_V2", "readme.txt"), "viewer\n")
    truth = []
    for s, subject in enumerate(subjects):
        for q, folder in enumerate(expressions):
            sequence = os.path.join(root, subject, folder)
            frames = common.render_sequence(gen, s, BU4DFE_EXPRESSIONS[folder],
                                            frames_per_sequence, (q,))
            names = [f"{f:03d}.jpg" for f in range(len(frames))]
            for name, (image, _) in zip(names, frames, strict=True):
                common.write_image(os.path.join(sequence, name), image)
                _touch(os.path.join(sequence, name[:-4] + ".wrl"), "#VRML V2.0 utf8\n")
            entry = {"subject": subject, "folder": folder, "frames": names, "bad": None,
                     "stray": None, "expression": BU4DFE_EXPRESSIONS[folder]}
            if plant_bad and not truth:
                common.truncate(os.path.join(sequence, names[-1]))
                _touch(os.path.join(sequence, "notes.txt"), "stray\n")
                entry["bad"], entry["stray"] = names[-1], "notes.txt"
            truth.append(entry)
    return truth
