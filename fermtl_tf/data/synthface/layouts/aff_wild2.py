"""Write SynthFace videos in the Aff-Wild2 (ABAW) layout: cropped_aligned frames + task files.

Each video is one identity showing one expression ramping from neutral to apex; its
frames go to ``cropped_aligned/<video>/00001.jpg`` and its labels to one file per task
(``VA_Set``/``AU_Set``/``EXPR_Set`` with ``Training_Set``/``Validation_Set``, or the
``*_Challenge``/``Train_Set`` layout). Frame 2 of every video is annotated invalid in
every task (-5 / -1), frame 3 has expression ``Other``. The returned ``truth`` is what
was written, for tests to check an importer against.
"""

import os

import cv2

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES

ABAW_AUS = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
ABAW_EXPR = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
_TASK_DIRS = {
    "sets": {"va": "annotations/VA_Set", "au": "annotations/AU_Set",
             "expr": "annotations/EXPR_Set"},
    "challenge": {"va": "VA_Estimation_Challenge", "au": "AU_Detection_Challenge",
                  "expr": "EXPR_Classification_Challenge"},
}
_SPLIT_DIRS = {"sets": {"train": "Training_Set", "val": "Validation_Set"},
               "challenge": {"train": "Train_Set", "val": "Validation_Set"}}
INVALID_FRAME = 2
OTHER_FRAME = 3


def _write_jpeg(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def _write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _frame_labels(labels, frame):
    """The three tasks' cells of one frame (strings, as written) and the truth entry."""
    au_index = [SYNTHFACE_AU_NAMES.index(f"AU{n}") for n in ABAW_AUS]
    aus = [int(labels["au"][i]) for i in au_index]
    expression = ABAW_EXPR.index(labels["expression"].capitalize())
    va = (labels["valence"], labels["arousal"])
    if frame == INVALID_FRAME:
        return ["-5,-5", ",".join(["-1"] * len(aus)), "-1"], None
    if frame == OTHER_FRAME:
        expression = ABAW_EXPR.index("Other")
    truth = {"valence": va[0], "arousal": va[1], "au": dict(zip(ABAW_AUS, aus, strict=True)),
             "expression": None if expression == 7 else labels["expression"]}
    return [f"{va[0]:.4f},{va[1]:.4f}", ",".join(map(str, aus)), str(expression)], truth


def write_aff_wild2(root, num_videos=4, frames=12, seed=0, size=64, layout="sets",
                    plant_bad=False, conflict_video=False):
    """Write ``num_videos`` SynthFace videos of ``frames`` frames in the Aff-Wild2 layout.

    Videos alternate train / val. ``conflict_video``: the last video's VA file goes to
    the training set while its AU and EXPR files are in validation. ``plant_bad``: a
    malformed VA line (frame 5 of video 0) and a missing frame image (frame 7 of
    video 0). Returns ``{"videos": {video: split}, "frames": {(video, frame): truth},
    "bad": [...]}``; truth ``None`` marks an all-invalid frame.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames))
    truth = {"videos": {}, "frames": {}, "bad": [], "va_split": {}}
    for v in range(num_videos):
        video = f"{v + 1:d}-30-640x360" if v % 2 else f"video{v + 1:02d}_left"
        split = "train" if v % 2 == 0 else "val"
        columns = {"va": ["valence,arousal"], "au": [",".join(f"AU{n}" for n in ABAW_AUS)],
                   "expr": [",".join(ABAW_EXPR)]}
        for f, (image, labels) in enumerate(generator.render_sequence(v, 0), start=1):
            cells, frame_truth = _frame_labels(labels, f)
            for task, cell in zip(("va", "au", "expr"), cells, strict=True):
                columns[task].append(cell)
            truth["frames"][(video, f)] = frame_truth
            if plant_bad and v == 0 and f == 7:
                truth["bad"].append(("missing image", video, f))
                continue
            _write_jpeg(os.path.join(root, "cropped_aligned", video, f"{f:05d}.jpg"), image)
        if plant_bad and v == 0:
            columns["va"][5] = "0.5;0.25"  # line 6 of the file = frame 5
            truth["bad"].append(("malformed VA line", video, 5))
        va_split = "train" if conflict_video and v == num_videos - 1 else split
        for task, lines in columns.items():
            task_split = va_split if task == "va" else split
            folder = os.path.join(root, _TASK_DIRS[layout][task], _SPLIT_DIRS[layout][task_split])
            _write_lines(os.path.join(folder, f"{video}.txt"), lines)
        truth["videos"][video] = split
        truth["va_split"][video] = va_split
    return truth

