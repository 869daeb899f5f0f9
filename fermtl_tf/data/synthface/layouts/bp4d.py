"""Write SynthFace subjects in the BP4D / BP4D+ layout: frame folders + AU_OCC tables.

``<subject>/<task>/<frame>.jpg`` (frames numbered from 100, zero-padded to 4 digits) and
``AUCoding/AU_OCC/<subject>_<task>.csv`` with a header of AU numbers and 0/1 cells; the
second frame of every task has AU23 = 9 (not codeable).
"""

import os

import cv2

from fermtl_tf.data.synthface.generator import SynthFaceConfig, SynthFaceGenerator
from fermtl_tf.data.synthface.labels import SYNTHFACE_AU_NAMES

BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
FIRST_FRAME = 100
UNCODED_AU, UNCODED_POSITION = 23, 1


def write_bp4d(root, num_subjects=4, tasks=2, frames=6, seed=0, size=64, plant_bad=False,
               image_folder=""):
    """Write the fixture; return ``{"aus": {(subject, task, frame): {au: 0/1/None}}}``.

    ``plant_bad``: a malformed row (wrong cell count) in the first table and a missing
    frame image in the second one.
    """
    generator = SynthFaceGenerator(SynthFaceConfig(seed=seed, image_size=size,
                                                   frames_per_sequence=frames,
                                                   sequences_per_identity=tasks))
    columns = [SYNTHFACE_AU_NAMES.index(f"AU{n}") for n in BP4D_AUS]
    truth = {"aus": {}, "subjects": [], "bad": []}
    table_dir = os.path.join(root, "AUCoding", "AU_OCC")
    os.makedirs(table_dir, exist_ok=True)
    for s in range(num_subjects):
        subject = f"{'FM'[s % 2]}{s // 2 + 1:03d}"
        truth["subjects"].append(subject)
        for t in range(tasks):
            task = f"T{t + 1}"
            lines = ["frame," + ",".join(map(str, BP4D_AUS))]
            for position, (image, labels) in enumerate(generator.render_sequence(s, t)):
                frame = FIRST_FRAME + position
                values = [int(labels["au"][c]) for c in columns]
                if position == UNCODED_POSITION:
                    values[BP4D_AUS.index(UNCODED_AU)] = 9
                truth["aus"][(subject, task, frame)] = {
                    au: (None if v == 9 else v) for au, v in zip(BP4D_AUS, values, strict=True)}
                lines.append(f"{frame}," + ",".join(map(str, values)))
                if plant_bad and s == 0 and t == 1 and position == 2:
                    truth["bad"].append(("missing image", subject, task, frame))
                    continue
                path = os.path.join(root, image_folder, subject, task, f"{frame:04d}.jpg")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if plant_bad and s == 0 and t == 0:
                lines[3] = lines[3].rsplit(",", 1)[0]  # file line 4 = frame 102, one cell short
                truth["bad"].append(("malformed row", subject, task, FIRST_FRAME + 2))
            with open(os.path.join(table_dir, f"{subject}_{task}.csv"), "w",
                      encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
    return truth
