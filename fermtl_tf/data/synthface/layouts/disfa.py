"""Write SynthFace subjects in the DISFA layout: one MJPG .avi per subject + AU label files.

``Videos_LeftCamera/LeftVideoSN001_comp.avi`` holds a neutral-to-apex sequence;
``ActionUnit_Labels/SN001/SN001_au<n>.txt`` holds ``frame,intensity`` lines (frames from
1) with the rendered AU intensity rounded to DISFA's integer 0-5 scale.
"""

import os

import cv2
import numpy as np

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES

DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


def write_avi(path, frames_rgb, fps=25):
    """Write RGB frames as an MJPG .avi (what OpenCV can always decode)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    height, width = frames_rgb[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write MJPG video {path}")
    for frame in frames_rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def subject_name(index):
    return f"SN{2 * index + 1:03d}"


def write_disfa(root, num_subjects=3, frames=10, seed=0, size=64, camera="left",
                plant_bad=False):
    """Write ``num_subjects`` subjects of ``frames`` frames; return the truth.

    ``truth["intensity"][subject][frame][au]`` is the integer intensity written.
    ``plant_bad``: line 4 of the first subject's AU1 file is malformed and every AU file
    of that subject labels one frame past the end of its video.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames))
    side = camera.capitalize()
    columns = [SYNTHFACE_AU_NAMES.index(f"AU{n}") for n in DISFA_AUS]
    truth = {"intensity": {}, "bad": []}
    for s in range(num_subjects):
        subject = subject_name(s)
        sequence = generator.render_sequence(s, 0)
        write_avi(os.path.join(root, f"Videos_{side}Camera", f"{side}Video{subject}_comp.avi"),
                  [image for image, _ in sequence])
        levels = {f: np.clip(np.round(lab["au_intensity"][columns]), 0, 5).astype(int)
                  for f, (_, lab) in enumerate(sequence, start=1)}
        truth["intensity"][subject] = {
            f: dict(zip(DISFA_AUS, map(int, v), strict=True)) for f, v in levels.items()}
        for k, au in enumerate(DISFA_AUS):
            lines = [f"{f},{v[k]}" for f, v in levels.items()]
            if plant_bad and s == 0:
                lines.append(f"{frames + 1},0")
                if au == 1:
                    lines[3] = "4;x"
            path = os.path.join(root, "ActionUnit_Labels", subject, f"{subject}_au{au}.txt")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
        if plant_bad and s == 0:
            truth["bad"] = [(subject, "AU1 line 4"), (subject, f"frame {frames + 1}")]
    return truth
