"""SynthFace in the CK+ layout: grey PNG sequences plus Emotion/, FACS/ and Landmarks/."""

import os

from fermtl_tf.data.synthface.layouts import _lab_common as common

#: CK+ emotion code of each class the writer cycles through (0 neutral is never a label).
CKPLUS_CODE = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happiness": 5,
               "sadness": 6, "surprise": 7}


def _numbers_file(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write("".join(f"   {v:.7e}" for v in row) + "\n")


def write_ckplus(root, num_subjects=3, sequences_per_subject=2, frames_per_sequence=5,
                 image_size=96, seed=0, unlabelled_sequences=1, nest_emotion=False,
                 plant_bad=False):
    """Write a CK+-layout fixture into ``root``; return the ground truth per sequence.

    Subjects are ``S005, S010, ...``; the labelled sequences cycle through the seven
    CK+ emotions. ``unlabelled_sequences`` extra sequences (of the first subjects) get
    no emotion file, like 266 of CK+'s 593. ``plant_bad`` truncates the last frame of
    the first sequence and writes a malformed emotion file for the second.
    Truth: list of dicts with ``subject``, ``sequence``, ``expression`` (or None),
    ``frames`` (file names), ``aus`` ({AU: intensity}), ``landmarks`` ({name: (68, 2)}),
    ``bad`` (None, ``"image"`` or ``"emotion"``).
    """
    gen = common.generator(seed, image_size)
    classes = list(CKPLUS_CODE)
    plan = [(s, q, True) for s in range(num_subjects) for q in range(sequences_per_subject)]
    plan += [(s % num_subjects, sequences_per_subject, False) for s in range(unlabelled_sequences)]
    truth = []
    for k, (s, q, labelled) in enumerate(plan):
        subject, sequence = f"S{5 * (s + 1):03d}", f"{q + 1:03d}"
        expression = classes[k % len(classes)] if labelled else "happiness"
        frames = common.render_sequence(gen, s, expression, frames_per_sequence, (q,))
        entry = {"subject": subject, "sequence": sequence, "frames": [], "landmarks": {},
                 "expression": expression if labelled else None, "bad": None,
                 "aus": common.bilateral_aus(frames[-1][1])}
        for f, (image, labels) in enumerate(frames):
            stem = f"{subject}_{sequence}_{f + 1:08d}"
            common.write_image(os.path.join(root, "cohn-kanade-images", subject, sequence,
                                            stem + ".png"), image, grey=True)
            _numbers_file(os.path.join(root, "Landmarks", subject, sequence,
                                       stem + "_landmarks.txt"), labels["landmarks"])
            entry["frames"].append(stem + ".png")
            entry["landmarks"][stem + ".png"] = labels["landmarks"]
        peak = os.path.join(subject, sequence, entry["frames"][-1][:-4])
        _numbers_file(os.path.join(root, "FACS", peak + "_facs.txt"),
                      sorted(entry["aus"].items()))
        if labelled:
            emotion = os.path.join(root, "Emotion", *(["Emotion"] if nest_emotion else []),
                                   peak + "_emotion.txt")
            _numbers_file(emotion, [[CKPLUS_CODE[expression]]])
            if plant_bad and k == 1:
                with open(emotion, "w", encoding="utf-8") as handle:
                    handle.write("   anger\n")
                entry["bad"] = "emotion"
        if plant_bad and k == 0:
            common.truncate(os.path.join(root, "cohn-kanade-images", subject, sequence,
                                         entry["frames"][-1]))
            entry["bad"] = "image"
        truth.append(entry)
    return truth
