"""Write SynthFace videos in the original Aff-Wild layout: MJPG .avi videos, one
valence and one arousal file per video (one value per line), per-frame ``.pts`` boxes
and 68 landmarks.

Each video is one identity ramping from neutral to an expression's apex. The returned
``truth`` is what was written, for tests to check the importer against.
"""

import os

import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.layouts.disfa import write_avi
from fermtl_tf.data.synthface.layouts.w300 import write_pts

BAD_VIDEO, BAD_LINE = 0, 3


def _write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _box_corners(labels):
    x, y, w, h = (float(v) for v in labels["face_box"])
    return np.round(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]), 3)


def write_aff_wild(root, num_videos=3, frames=11, seed=0, size=64, nested=False,
                   first_frame=1, header=False, plant_bad=False):
    """Write ``num_videos`` videos of ``frames`` frames; the last one is a test video.

    ``nested``: the ``train/train`` nesting some copies have (``videos/train/train/``,
    ``annotations/train/train/valence/``, ``bboxes/train/train/<video>/``).
    ``first_frame``: the number of each video's first frame in ``.pts`` names.
    ``header``: start each annotation file with a ``valence`` / ``arousal`` line.
    ``plant_bad``: line ``BAD_LINE`` of video 0's valence file is not a number.
    Returns ``{"videos": {video: split}, "frames": {(video, frame number): (valence,
    arousal, landmarks (68, 2), box (x0, y0, x1, y1))}, "bad": [...]}``.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames))
    truth = {"videos": {}, "frames": {}, "bad": []}
    for v in range(num_videos):
        video = f"{101 + v}"
        split = "test" if v == num_videos - 1 else "train"
        sub = os.path.join(split, split) if nested else split
        sequence = generator.render_sequence(v, 0)
        write_avi(os.path.join(root, "videos", sub, f"{video}.avi"),
                  [image for image, _ in sequence])
        columns = {"valence": ["valence"] if header else [],
                   "arousal": ["arousal"] if header else []}
        for k, (_, labels) in enumerate(sequence, start=1):
            frame = first_frame + k - 1
            valence, arousal = round(labels["valence"], 4), round(labels["arousal"], 4)
            columns["valence"].append(f"{valence:.4f}")
            columns["arousal"].append(f"{arousal:.4f}")
            points = np.round(labels["landmarks"], 3)
            corners = _box_corners(labels)
            for folder, values in (("landmarks", points), ("bboxes", corners)):
                path = os.path.join(root, folder, sub, video, f"{frame}.pts")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_pts(path, values)  # the 300-W convention: 1-based pixel centres
            truth["frames"][(video, frame)] = (valence, arousal, points,
                                               np.concatenate([corners.min(0),
                                                               corners.max(0)]))
        if plant_bad and v == BAD_VIDEO:
            columns["valence"][BAD_LINE - 1 + header] = "0.3;x"
            truth["bad"].append((video, first_frame + BAD_LINE - 1))
        for dimension, lines in columns.items():
            _write_lines(os.path.join(root, "annotations", sub, dimension, f"{video}.txt"),
                         lines)
        truth["videos"][video] = split
    return truth
