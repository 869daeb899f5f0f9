"""The ``ckplus`` source: the Extended Cohn-Kanade dataset (CK+, Lucey et al. 2010).

Protocol by default (FERSNet, Zhao et al., Sec. IV-B): the 327 sequences with an
emotion label, their last three frames, 7 classes (six basic + contempt, no neutral:
vocabulary ``ckplus7``; 981 images), 10 identity-independent folds. ``--classes``
chooses another class set: ``basic8`` (the 7 + neutral, with ``--neutral-first`` the
8-class setting of DMT-CNN), ``basic7`` (no contempt, with neutral), ``basic6`` (no
contempt, no neutral); sequences of other classes are not selected and counted in
``source_info.other_classes``. ``--neutral-first`` adds each labelled sequence's first
frame as ``neutral``; ``--frames last:1 --folds 5`` is Hu et al. (2018) Sec. 4.1;
``--folds 8`` is Liu et al. (2017) Sec. 4.1.

The emotion and FACS files name the peak (last) frame. Their labels go to every frame
kept by ``--frames last:N`` (the papers' "label the last three frames"); with
``--frames all`` they stay on the named frame only. Landmarks are per frame.
"""

import os
import re

import numpy as np

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import BASIC8, vocabulary

#: CK+ emotion codes 0..7 -> package class names.
CKPLUS_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happiness", "sadness",
                "surprise")
#: ``--classes`` choices: vocabularies whose classes are all CK+ classes.
CLASS_SETS = ("ckplus7", "basic8", "basic7", "basic6")


class LabelFileError(ValueError):
    """A malformed label file; the message names the file and line."""


def _numbers(path, root, per_line):
    """Rows of ``per_line`` floats from a CK+ text file; LabelFileError naming the line."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                values = [float(v) for v in line.split()]
            except ValueError:
                values = []
            if len(values) != per_line:
                raise LabelFileError(f"{os.path.relpath(path, root)} line {number}: expected "
                                     f"{per_line} number(s), got {line.strip()!r}")
            rows.append(values)
    return rows


def read_emotion(path, root):
    """The CK+ emotion code of an ``*_emotion.txt`` file as a class name."""
    rows = _numbers(path, root, 1)
    code = rows[0][0] if len(rows) == 1 else None
    if code is None or code != int(code) or not 0 <= code < len(CKPLUS_CODES):
        raise LabelFileError(f"{os.path.relpath(path, root)} line 1: expected one emotion "
                             f"code 0-7, got {rows!r}")
    return CKPLUS_CODES[int(code)]


def read_facs(path, root):
    """``{AU number: intensity}`` of a ``*_facs.txt`` file (intensity 0 = not coded)."""
    return {int(au): intensity for au, intensity in _numbers(path, root, 2)}


def read_landmarks(path, root):
    points = np.array(_numbers(path, root, 2), dtype=np.float64)
    if points.shape != (NUM_LANDMARKS, 2):
        raise LabelFileError(f"{os.path.relpath(path, root)}: {len(points)} points, "
                             f"expected {NUM_LANDMARKS}")
    return points


def _label_file(folder, suffix):
    """The single file of ``folder`` ending in ``suffix`` (the peak frame's), or ``None``."""
    if folder is None or not os.path.isdir(folder):
        return None
    names = sorted(n for n in os.listdir(folder) if n.endswith(suffix))
    return os.path.join(folder, names[-1]) if names else None


class _Sequence:
    """The frames and label files of one ``S<subject>/<sequence>`` folder."""

    def __init__(self, root, folders, subject, sequence):
        self.subject, self.sequence = subject, sequence
        self.id = f"{subject}_{sequence}"
        self.folder = os.path.join(folders["images"], subject, sequence)
        self.frames = common.image_files(self.folder)
        self.emotion = _label_file(self._label_folder(folders, "emotion"), "_emotion.txt")
        self.facs = _label_file(self._label_folder(folders, "facs"), "_facs.txt")
        self.landmarks = self._label_folder(folders, "landmarks")
        self.root = root

    def _label_folder(self, folders, kind):
        base = folders.get(kind)
        return None if base is None else os.path.join(base, self.subject, self.sequence)


class CKPlusSource(Source):
    name = "ckplus"
    description = "CK+ (Extended Cohn-Kanade): last 3 frames, 7 classes, 10 subject folds"
    layout = """\
Expected layout under --root (the folder holding the unpacked CK+ archives):
  cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
  Emotion/S005/001/S005_001_00000011_emotion.txt   one number: 0 neutral, 1 anger,
        2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise (peak frame only,
        327 of 593 sequences)
  FACS/S005/001/S005_001_00000011_facs.txt          lines "AU intensity"   (optional)
  Landmarks/S005/001/S005_001_00000001_landmarks.txt  68 lines "x y"       (optional)
Also accepted: Emotion/Emotion/..., FACS/FACS/..., Landmarks/Landmarks/... (some copies
nest the folders), any letter case, .png or .jpg frames.
Default protocol (FERSNet): labelled sequences only, last 3 frames, 7 classes
(anger..surprise + contempt, vocabulary ckplus7), 10 identity-independent folds.
A missing or malformed label file or image is listed as skipped in manifest.json."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding cohn-kanade-images/")
        parser.add_argument("--neutral-first", action="store_true",
                            help="also keep each labelled sequence's first frame as neutral")
        parser.add_argument("--include-unlabelled", action="store_true",
                            help="also import sequences without an emotion file (AUs, landmarks)")
        common.add_protocol_arguments(parser, "last:3", 10, "FERSNet",
                                      classes=("ckplus7", CLASS_SETS))

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "ckplus --root")
        folders = self._folders(root)
        vocab_name = args.classes
        if args.neutral_first and "neutral" not in vocabulary(vocab_name):
            raise PrepError(f"ckplus: --neutral-first needs a class set with neutral, and "
                            f"--classes {vocab_name} has none (use basic8 or basic7)")
        sequences = self._sequences(root, folders)
        au_numbers = self._au_numbers(sequences)
        au_names = [f"AU{n}" for n in au_numbers]
        inputs = []
        for seq in sequences:
            inputs.extend(self._sequence_inputs(seq, args, au_numbers))
        if not inputs:
            raise PrepError(f"ckplus: no labelled sequence under {folders['images']} "
                            "(is the Emotion/ folder there?)")
        mode = common.parse_frame_rule(args.frames)[0]
        kept, dropped, other_classes = common.apply_protocol(
            inputs, args.frames, args.folds or 10, BASIC8, vocab_name)
        if args.neutral_first and mode != "all":
            kept = self._with_neutral_first(inputs, kept, vocab_name)
        paths = [os.path.join(s.folder, f) for s in sequences for f in s.frames]
        options = {k: getattr(args, k) for k in ("classes", "neutral_first", "include_unlabelled",
                                                 "frames", "folds")}
        return ImportedDataset(
            source=self.name, inputs=kept, vocabulary_name=vocab_name,
            vocabulary=vocabulary(vocab_name), au_names=au_names,
            identities={s.subject: int(s.subject[1:]) for s in sequences},
            domains=[self.name],
            fingerprint={"listing": common.listing_fingerprint(root, paths, options)},
            info={"root": root, "protocol": options, "not_selected": dropped,
                  "other_classes": other_classes, "sequences": len(sequences),
                  "labelled_sequences": sum(s.emotion is not None for s in sequences)},
        )

    def _folders(self, root):
        images = common.nested_child(root, "cohn-kanade-images")
        if images is None or not os.path.isdir(images):
            raise PrepError(f"ckplus: no cohn-kanade-images/ folder under {root}")
        folders = {"images": images}
        for kind, name in (("emotion", "Emotion"), ("facs", "FACS"), ("landmarks", "Landmarks")):
            path = common.nested_child(root, name)
            if path is not None and os.path.isdir(path):
                folders[kind] = path
        return folders

    def _sequences(self, root, folders):
        sequences = []
        for subject in common.sub_folders(folders["images"]):
            if not re.fullmatch(r"S\d+", subject):
                continue
            for sequence in common.sub_folders(os.path.join(folders["images"], subject)):
                seq = _Sequence(root, folders, subject, sequence)
                if seq.frames:
                    sequences.append(seq)
        if not sequences:
            raise PrepError(f"ckplus: no S<subject>/<sequence>/ image folders under "
                            f"{folders['images']}")
        return sequences

    def _au_numbers(self, sequences):
        numbers = set()
        for seq in sequences:
            if seq.facs is not None:
                try:
                    numbers.update(read_facs(seq.facs, seq.root))
                except (LabelFileError, OSError):
                    pass  # reported as a skip of the sequence's frames
        return sorted(numbers)

    def _sequence_inputs(self, seq, args, au_numbers):
        """One FaceInput per frame of ``seq``, labelled in :data:`BASIC8` (all CK+ classes).

        Sequence-wide problems become each frame's error; the class set of ``--classes``
        is applied later, by :func:`_lab_common.restrict_classes`.
        """
        error, expression, aus = None, None, None
        try:
            if seq.emotion is not None:
                expression = read_emotion(seq.emotion, seq.root)
            elif not args.include_unlabelled:
                return []
            if seq.facs is not None:
                aus = read_facs(seq.facs, seq.root)
        except (LabelFileError, OSError) as problem:
            error = str(problem)
        peak = len(seq.frames) - 1
        labels_everywhere = common.parse_frame_rule(args.frames)[0] == "last"
        inputs = []
        for position, name in enumerate(seq.frames):
            index = common.trailing_number(name)
            face = FaceInput(
                image_path=os.path.join(seq.folder, name), image_id=name,
                where=f"{seq.id} frame {name}", error=error, identity=int(seq.subject[1:]),
                sequence_id=seq.id, frame_index=position if index is None else index,
            )
            if error is None and (labels_everywhere or position == peak):
                self._label(face, expression, aus, au_numbers)
            self._landmarks(face, seq, name)
            inputs.append(face)
        return inputs

    @staticmethod
    def _label(face, expression, aus, au_numbers):
        if expression is not None:
            face.expression = BASIC8.index(expression)
        if aus is not None:
            face.au = np.array([float(n in aus) for n in au_numbers])
            face.au_intensity = np.array([float(aus.get(n, 0.0)) for n in au_numbers])
            face.au_mask = np.ones(len(au_numbers))

    @staticmethod
    def _landmarks(face, seq, name):
        if seq.landmarks is None or face.error:
            return
        path = os.path.join(seq.landmarks, os.path.splitext(name)[0] + "_landmarks.txt")
        if os.path.isfile(path):
            try:
                face.landmarks = read_landmarks(path, seq.root)
            except (LabelFileError, OSError) as problem:
                face.error = str(problem)

    @staticmethod
    def _with_neutral_first(inputs, kept, vocab_name):
        """Add the first frame of every labelled sequence as ``neutral``, in input order."""
        labelled = {f.sequence_id: f.fold for f in kept if f.expression is not None}
        firsts = {}
        for face in inputs:
            if face.sequence_id in labelled:
                current = firsts.get(face.sequence_id)
                if current is None or face.frame_index < current.frame_index:
                    firsts[face.sequence_id] = face
        chosen = {id(f) for f in kept}
        neutral = vocabulary(vocab_name).index("neutral")
        result = []
        for face in inputs:
            if id(face) in chosen:
                result.append(face)
            elif firsts.get(face.sequence_id) is face:
                face.expression, face.fold = neutral, labelled[face.sequence_id]
                face.au = face.au_intensity = face.au_mask = None
                result.append(face)
        return result


SOURCE = CKPlusSource()
