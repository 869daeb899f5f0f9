"""SynthFace in the MMI layout: Sessions/<n>/S001-002.avi (MJPG) + session and AU XML."""

import os

import cv2
import numpy as np

from fermtl_tf.data.synthface.layouts import _lab_common as common

MMI_CODE = {"anger": 1, "disgust": 2, "fear": 3, "happiness": 4, "sadness": 5, "surprise": 6}


def _onset_apex_offset(gen, identity, expression, num_frames, key):
    """Frames neutral -> apex -> neutral: the rise of a sequence then its mirror."""
    rise = common.render_sequence(gen, identity, expression, num_frames // 2 + 1, key)
    return rise + rise[-2::-1][: num_frames - len(rise)]


def _write_video(path, frames, fps=25):
    height, width = frames[0][0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for image, _ in frames:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def _au_xml(path, frames):
    """Onset (type 1), apex (2) and offset (3) markers of every AU active at the apex."""
    active = common.bilateral_aus(frames[len(frames) // 2][1])
    lines = ["<?xml version='1.0'?>", "<ActionUnits>"]
    coding = {}
    for number in sorted(active):
        on = [i + 1 for i, (_, labels) in enumerate(frames)
              if number in common.bilateral_aus(labels)]
        coding[number] = (on[0], on[-1])
        lines += [f'  <ActionUnit Number="{number}">',
                  f'    <Marker Frame="{on[0]}" Type="1"/>',
                  f'    <Marker Frame="{len(frames) // 2 + 1}" Type="2"/>',
                  f'    <Marker Frame="{on[-1]}" Type="3"/>', "  </ActionUnit>"]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines + ["</ActionUnits>"]) + "\n")
    return coding


def write_mmi(root, num_subjects=2, sequences_per_subject=2, frames_per_sequence=7,
              image_size=96, seed=0, profile_sessions=1, frontal_tags=True, plant_bad=False):
    """Write an MMI fixture under ``root/Sessions``; return the truth per session.

    Session ``k`` (1-based folder name) of subject ``s`` is ``S{s:03d}-{q:03d}``; its
    emotion cycles through the six basic classes. ``profile_sessions`` extra sessions
    carry ``<Metatag Name="View" Value="profile">`` (outside the protocol); the others
    carry ``View`` ``frontal``, or no view tag when ``frontal_tags`` is False. ``plant_bad``
    makes the second session's XML malformed. Truth: dicts with ``session``, ``stem``,
    ``subject``, ``expression``, ``frames`` (count), ``view``, ``aus`` ({AU: (first,
    last) 1-based frames on}), ``bad``.
    """
    gen = common.generator(seed, image_size)
    classes = list(MMI_CODE)
    plan = [(s, q, "frontal") for s in range(num_subjects) for q in range(sequences_per_subject)]
    plan += [(0, sequences_per_subject + p, "profile") for p in range(profile_sessions)]
    truth = []
    for k, (s, q, view) in enumerate(plan):
        session, stem = str(k + 1), f"S{s + 1:03d}-{q + 1:03d}"
        folder = os.path.join(root, "Sessions", session)
        os.makedirs(folder, exist_ok=True)
        expression = classes[k % len(classes)]
        frames = _onset_apex_offset(gen, s, expression, frames_per_sequence, (q,))
        _write_video(os.path.join(folder, stem + ".avi"), frames)
        aus = _au_xml(os.path.join(folder, stem + "-oao_aucs.xml"), frames)
        meta = os.path.join(folder, stem + ".xml")
        view_tag = (f'  <Metatag Name="View" Value="{view}"/>\n'
                    if frontal_tags or view != "frontal" else "")
        with open(meta, "w", encoding="utf-8") as handle:
            handle.write("<?xml version='1.0'?>\n<Session>\n"
                         f'  <Metatag Name="Emotion" Value="{MMI_CODE[expression]}"/>\n'
                         f"{view_tag}</Session>\n")
        entry = {"session": session, "stem": stem, "subject": s + 1, "view": view,
                 "expression": expression, "frames": len(frames), "aus": aus, "bad": None,
                 "apex_image": np.asarray(frames[len(frames) // 2][0])}
        if plant_bad and k == 1:
            with open(meta, "w", encoding="utf-8") as handle:
                handle.write("<Session><Metatag Name='Emotion' Value='2'>\n")
            entry["bad"] = "xml"
        truth.append(entry)
    return truth
