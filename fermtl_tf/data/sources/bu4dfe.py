"""The ``bu4dfe`` source: BU-4DFE, Binghamton's 3D dynamic facial expressions (Yin et al. 2008).

FERSNet (Zhao et al., Sec. IV-B, rows "FERSNet (BU-4DFE)" of Tables II-IV) pre-trains on
it: "60,600 images from 101 subjects with the six standard emotion labels", i.e. every
frame of the 606 sequences (101 subjects x 6 expressions, about 100 frames each). So the
default here is every frame, 6 classes (vocabulary ``basic6``), identity = subject, no
folds (``--folds K`` assigns identity-independent ones) and no split (``unassigned``).

What is read: the 2D texture frames of each sequence, ``<subject>/<Expression>/<n>.jpg``.
The 3D models beside them (``.wrl``) and the 3D landmark files of the BND release
(``.bnd``) are counted in ``source_info.not_read``, as is the ``BU_WrlViewer*`` folder the
release ships with. Anything else is not silently passed over: an unknown folder is a
:class:`PrepError` naming it, an unknown file a skipped input naming it.
"""

import os
import re
from collections import Counter

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC6, vocabulary

#: Expression folders of the release (and the package's class names, also accepted).
BU4DFE_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                  "sad": "sadness", "surprise": "surprise", "anger": "anger",
                  "happiness": "happiness", "sadness": "sadness"}
#: Subject folders: F001-F058 (female), M001-M043 (male).
SUBJECT = re.compile(r"[FM]\d{3}", re.IGNORECASE)
#: Files of the release that are not 2D frames: 3D models, 3D landmarks (BND release).
NOT_READ_EXTENSIONS = (".wrl", ".bnd")
#: Folders of the release that hold no subject: the VRML viewer it ships with.
NOT_READ_FOLDER = re.compile(r"BU_WrlViewer", re.IGNORECASE)
#: Zhao et al., Sec. IV-B: what FERSNet's pre-training set holds.
PAPER_COUNTS = {"subjects": 101, "sequences": 606, "images": 60600}


class _Listing:
    """What a walk of the release found besides the frames."""

    def __init__(self):
        self.frames, self.paths, self.unknown_files = [], [], []
        self.not_read = Counter()
        self.empty_sequences = []


def _unknown_folder(path, expected):
    return PrepError(f"bu4dfe: unknown folder {path}: expected {expected}; move it out of "
                     f"--root (nothing under it would be read)")


class BU4DFESource(Source):
    name = "bu4dfe"
    description = "BU-4DFE: 101 subjects x 6 expression sequences, all frames (FERSNet pre-training)"
    layout = """\
Expected layout under --root (the unpacked BU-4DFE release):
  F001/Angry/000.jpg 001.jpg ...   the 2D texture frames of one sequence (read)
  F001/Angry/000.wrl ...           the 3D models (not read; .bnd 3D landmarks neither)
  {F001..F058, M001..M043}/{Angry,Disgust,Fear,Happy,Sad,Surprise}/<frame>.jpg
  BU_WrlViewer_V2/                 the release's viewer (not read)
Folder names are matched ignoring case; Anger/Happiness/Sadness are accepted too. Frames
may be any image format OpenCV reads and are ordered by the number in their name. An
unknown folder stops the import (named); an unknown file is listed as skipped.
Default protocol (FERSNet pre-training): every frame, 6 classes (basic6), identity =
subject, no folds (--folds K assigns identity-independent folds), no split."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding F001/ ... M043/")
        common.add_protocol_arguments(parser, "all", 0, "FERSNet pre-training",
                                      classes=("basic6", ("basic6", "basic7")))
        parser.description = ("Without --folds no folds are assigned (the whole set is "
                              "FERSNet's pre-training data).")

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "bu4dfe --root")
        listing = _Listing()
        subjects = self._subjects(root, listing)
        identities = {name: index for index, name in enumerate(subjects)}
        for subject in subjects:
            self._read_subject(root, subject, identities[subject], listing)
        self._note_files(root, root, -1, listing, frames_allowed=False)
        if not listing.frames:
            raise PrepError(f"bu4dfe: no frame image in any <subject>/<Expression>/ folder "
                            f"under {root}")
        kept, dropped, other_classes = common.apply_protocol(
            listing.frames, args.frames, args.folds or 0, BASIC6, args.classes)
        options = {k: getattr(args, k) for k in ("frames", "folds", "classes")}
        sequences = len({f.sequence_id for f in listing.frames})
        return ImportedDataset(
            source=self.name, inputs=kept + listing.unknown_files,
            vocabulary_name=args.classes, vocabulary=vocabulary(args.classes),
            identities=identities, domains=[self.name],
            fingerprint={"listing": common.listing_fingerprint(root, listing.paths, options)},
            info={"root": root, "protocol": options, "not_selected": dropped,
                  "other_classes": other_classes, "subjects": len(subjects),
                  "sequences": sequences, "frames": len(listing.frames),
                  "not_read": dict(sorted(listing.not_read.items())),
                  "empty_sequences": listing.empty_sequences},
            warnings=count_warnings(len(subjects), sequences, len(listing.frames),
                                    listing.empty_sequences),
        )

    @staticmethod
    def _subjects(root, listing):
        """Sorted subject folder names; the viewer's folder is counted in ``listing``, any
        other folder is a PrepError."""
        subjects = []
        for name in common.sub_folders(root):
            if SUBJECT.fullmatch(name):
                subjects.append(name)
            elif NOT_READ_FOLDER.match(name):
                listing.not_read[f"{name}/"] += 1
            else:
                raise _unknown_folder(os.path.join(root, name),
                                      "subject folders F001... / M001... (or BU_WrlViewer*)")
        if not subjects:
            raise PrepError(f"bu4dfe: no subject folder (F001..., M001...) under {root}; "
                            f"--root must be the folder holding them")
        return subjects

    def _read_subject(self, root, subject, identity, listing):
        """Append the frames of every expression folder of ``subject`` to ``listing``."""
        folder = os.path.join(root, subject)
        for name in common.sub_folders(folder):
            expression = BU4DFE_FOLDERS.get(name.lower())
            if expression is None:
                raise _unknown_folder(os.path.join(folder, name), "expression folders "
                                      "Angry, Disgust, Fear, Happy, Sad, Surprise")
            self._read_sequence(root, os.path.join(folder, name), subject, identity,
                                BASIC6.index(expression), listing)
        self._note_files(root, folder, identity, listing, frames_allowed=False)

    def _read_sequence(self, root, folder, subject, identity, expression, listing):
        """Frames of one ``<subject>/<Expression>/`` folder; ``frame_index`` is the number in
        the file name (``012.jpg``: 12)."""
        for name in common.sub_folders(folder):
            raise _unknown_folder(os.path.join(folder, name), "only frame files in a "
                                  "sequence folder")
        sequence_id = f"{subject}_{os.path.basename(folder)}"
        names = common.image_files(folder)
        if not names:
            listing.empty_sequences.append(os.path.relpath(folder, root))
        for position, name in enumerate(names):
            number = common.trailing_number(name)
            path = os.path.join(folder, name)
            listing.paths.append(path)
            listing.frames.append(FaceInput(
                image_path=path, image_id=os.path.relpath(path, root).replace(os.sep, "/"),
                where=os.path.relpath(path, root), identity=identity,
                sequence_id=sequence_id, frame_index=position if number is None else number,
                expression=expression))
        self._note_files(root, folder, identity, listing, frames_allowed=True)

    @staticmethod
    def _note_files(root, folder, identity, listing, frames_allowed):
        """Count the release's 3D files; list every other non-frame file as a skipped input."""
        frames = set(common.image_files(folder)) if frames_allowed else set()
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.startswith(".") or name in frames or not os.path.isfile(path):
                continue
            extension = os.path.splitext(name)[1].lower()
            if frames_allowed and extension in NOT_READ_EXTENSIONS:
                listing.not_read[extension] += 1
                continue
            where = os.path.relpath(path, root)
            listing.paths.append(path)
            listing.unknown_files.append(FaceInput(
                image_path=path, image_id=where.replace(os.sep, "/"), where=where,
                identity=identity, error=(
                    "not a BU-4DFE frame: expected <subject>/<Expression>/<n>.jpg frames "
                    "(and .wrl/.bnd 3D files beside them)")))


def _describe(counts):
    return ", ".join(f"{count} {name}" for name, count in counts.items())


def count_warnings(subjects, sequences, frames, empty_sequences):
    """Warnings when the release read differs from the paper's set, or has empty sequences."""
    warnings = []
    found = {"subjects": subjects, "sequences": sequences, "images": frames}
    if found != PAPER_COUNTS:
        warnings.append(f"bu4dfe: read {_describe(found)}; FERSNet (Sec. IV-B) pre-trained "
                        f"on {_describe(PAPER_COUNTS)}")
    if empty_sequences:
        warnings.append(f"bu4dfe: {len(empty_sequences)} expression folder(s) hold no frame "
                        f"image: {', '.join(empty_sequences[:5])}"
                        + (" ..." if len(empty_sequences) > 5 else ""))
    return warnings


SOURCE = BU4DFESource()
