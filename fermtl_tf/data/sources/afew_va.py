"""The ``afew_va`` source: AFEW-VA clips with per-frame valence, arousal and 68 landmarks.

The distribution has one folder per clip, ``001/`` ... ``600/``, holding the frames
(``00000.png`` ...) and ``001.json``: ``{"actor": ..., "video_id": "001", "frames":
{"00000": {"valence": v, "arousal": a, "landmarks": [[x, y] x 68]}, ...}}`` with
valence/arousal integers in [-10, 10]. They are divided by 10 to [-1, 1], as
FaceBehaviorNet does (Kollias et al., §5.1). FaceBehaviorNet tests on AFEW-VA as an
unseen database (§5.4, Table 6), so every frame is ``test``; ``fermtl-prep --folds K``
assigns actor-independent folds for cross-validation instead.
"""

import json
import os

import numpy as np

from fermtl_tf.data.sources._au_video_common import (
    IMAGE_EXTENSIONS,
    RowError,
    fingerprint_files,
    id_map,
    number,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import BASIC7

VA_SCALE = 10.0


def find_clips(root, max_depth=3):
    """``[(clip, json path)]``: every ``<clip>/<clip>.json`` under ``root``, sorted."""
    clips = []
    for folder, subfolders, files in os.walk(root):
        clip = os.path.basename(folder)
        if f"{clip}.json" in files:
            clips.append((clip, os.path.join(folder, f"{clip}.json")))
        if os.path.relpath(folder, root).count(os.sep) >= max_depth:
            subfolders[:] = []
        subfolders.sort()
    return sorted(clips, key=lambda c: c[1])


def read_clip(path, rel):
    """The clip's JSON as a dict with a ``frames`` mapping; RowError if unusable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RowError(f"{rel}: cannot read the clip's JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), dict):
        raise RowError(f"{rel}: expected an object with a 'frames' mapping")
    return data


def parse_frame(entry, where):
    """(valence, arousal, landmarks or None) of one frame entry; RowError if malformed."""
    if not isinstance(entry, dict):
        raise RowError(f"{where}: expected an object with valence and arousal")
    valence = number(entry.get("valence"), f"{where} valence", -VA_SCALE, VA_SCALE)
    arousal = number(entry.get("arousal"), f"{where} arousal", -VA_SCALE, VA_SCALE)
    landmarks = entry.get("landmarks")
    if landmarks is not None:
        try:
            landmarks = np.asarray(landmarks, dtype=np.float64)
        except (TypeError, ValueError):
            raise RowError(f"{where}: landmarks must be numbers") from None
        if landmarks.shape != (NUM_LANDMARKS, 2) or not np.isfinite(landmarks).all():
            raise RowError(f"{where}: landmarks must be {NUM_LANDMARKS} [x, y] pairs, "
                           f"got shape {landmarks.shape}")
    return valence / VA_SCALE, arousal / VA_SCALE, landmarks


def frame_image(folder, key):
    """Path of frame ``key`` in the clip folder, any image extension, or ``None``."""
    for extension in IMAGE_EXTENSIONS:
        path = os.path.join(folder, key + extension)
        if os.path.isfile(path):
            return path
    return None


class AfewVaSource(Source):
    name = "afew_va"
    description = "AFEW-VA: film clips with per-frame valence/arousal (-10..10) and landmarks"
    layout = """\
Expected layout under --root (the 600 clip folders, possibly inside the zip parts'
folders):
  001/001.json    {"actor": ..., "frames": {"00000": {"valence": v, "arousal": a,
                   "landmarks": [[x, y] x 68]}, ...}}   valence/arousal in -10..10
  001/00000.png   frame images named by the frames' keys (.png or .jpg)
Valence/arousal are divided by 10. identity = the JSON's "actor" (the clip if absent).
Every frame is split "test" (unseen-database test of FaceBehaviorNet); --folds K gives
actor-independent folds. Landmarks are given, so --crop-from defaults to landmarks."""
    prep_defaults = {"crop_from": "landmarks"}

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the AFEW-VA folder")
        parser.add_argument("--split", default="test",
                            help="split name written to every record (default test)")

    def load(self, args):
        root = require_root(args.root, self.name)
        clips = find_clips(root)
        if not clips:
            raise PrepError(f"{root}: no <clip>/<clip>.json files found (e.g. 001/001.json)")
        parsed, inputs = [], []
        for clip, path in clips:
            rel = os.path.relpath(path, root)
            try:
                parsed.append((clip, path, rel, read_clip(path, rel)))
            except RowError as error:
                inputs.append(FaceInput(image_path=path, image_id=rel, where=rel,
                                        error=str(error), split=args.split))
        actors = {clip: str(data.get("actor") or clip) for clip, _, _, data in parsed}
        identities = id_map(actors.values())
        for clip, path, rel, data in parsed:
            folder = os.path.dirname(path)
            for key in sorted(data["frames"]):
                inputs.append(self._face(clip, folder, key, data["frames"][key], rel, root,
                                         identities[actors[clip]], args.split))
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            identities=identities, domains=[self.name],
            fingerprint=fingerprint_files([p for _, p in clips], root, {"split": args.split}),
            info={"root": root, "clips": len(clips), "va_scale": VA_SCALE},
        )

    @staticmethod
    def _face(clip, folder, key, entry, rel, root, identity, split):
        image = frame_image(folder, key)
        face = FaceInput(image_path=image or os.path.join(folder, key + ".png"),
                         image_id=os.path.relpath(image or os.path.join(folder, key), root),
                         where=f"{rel} frame {key}", identity=identity, sequence_id=clip,
                         frame_index=int(key) if key.isdigit() else -1, split=split)
        try:
            face.valence, face.arousal, face.landmarks = parse_frame(entry, face.where)
        except RowError as error:
            face.error = str(error)
            return face
        if image is None:
            face.error = f"frame image missing: {face.image_path}"
        return face


SOURCE = AfewVaSource()
