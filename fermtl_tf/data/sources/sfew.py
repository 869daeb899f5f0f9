"""The ``sfew`` source: Static Facial Expressions in the Wild 2.0 (Dhall et al. 2015).

Liu et al. (2017), Sec. 4.1: the 7 classes, training on Train and reporting on Val
("validation is the test set": Val images get ``split = "test"``; the EmotiW Test
images carry no labels and are not imported). Faces are found by MTCNN in the movie
frames; with ``--aligned`` the distribution's aligned face crops are read instead and
the whole crop is the face (its box is shrunk so that ``--box-extension`` brings it
back to the full image, so no black border is added).

Identities: SFEW has no subject labels, and Liu et al. (2017, Sec. 5.2) need them for
the identity-aware negatives ("the SFEW need manually label. In practice, an
off-the-shelf face recognition method can be used"). ``--identities FILE.csv`` reads
them from a CSV with the columns ``image`` (the image's path relative to ``--root``, as
in the manifest, or its bare file name when that is unique) and ``identity`` (any
string; subjects are numbered 0..n-1 in sorted order). Every imported image must have a
row: the missing ones are an error listing them. Frames where MTCNN finds no face are
kept with ``--undetected centre`` (a centred square of the frame, ``crops:
centre-fallback`` in the manifest), so the Val set keeps all its 436 images.
"""

import os
from collections import Counter

import cv2
import numpy as np

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources._listfile_common import id_map, read_csv_rows, sha256
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

#: SFEW class folders -> package class names.
SFEW_FOLDERS = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
                "neutral": "neutral", "sad": "sadness", "surprise": "surprise"}
SPLITS = (("Train", "train"), ("Val", "test"))


def whole_image_box(path, box_extension):
    """(x0, y0, x1, y1) that ``--box-extension`` grows to the whole image; None if unreadable."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    height, width = image.shape[:2]
    half_w, half_h = width / 2 / (1 + box_extension), height / 2 / (1 + box_extension)
    return [width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h]


def class_root(split_folder, aligned):
    """The folder holding the class folders of one split (``Train/`` or an aligned one)."""
    if not aligned:
        return split_folder
    name = os.path.basename(split_folder)
    for candidate in (f"{name}_Aligned_Faces", "Aligned_Faces", "aligned"):
        path = common.child(split_folder, candidate) or common.child(
            os.path.dirname(split_folder), candidate)
        if path and os.path.isdir(path):
            return path
    return None


class SFEWSource(Source):
    name = "sfew"
    description = "SFEW 2.0: 7 classes in the wild; Train for training, Val as the test set"
    layout = """\
Expected layout under --root (the SFEW 2.0 download):
  Train/{Angry,Disgust,Fear,Happy,Neutral,Sad,Surprise}/*.png     movie frames
  Val/{Angry,...,Surprise}/*.png
With --aligned, the aligned face crops are read instead, from any of
  Train/Train_Aligned_Faces/<Class>/, Train_Aligned_Faces/<Class>/, Train/Aligned_Faces/
(and the same for Val). Folder names are matched ignoring case.
Splits: Train -> train, Val -> test (the papers report on Val; Test has no labels).
Faces: MTCNN on the frames (default --crop-from detect); with --aligned the whole crop;
--undetected centre keeps frames without a detection (centred square).
Identities (for identity-aware tuples): --identities FILE.csv with columns
  image      path relative to --root (Train/Angry/x.png) or the bare file name
  identity   subject name or number"""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding Train/ and Val/")
        parser.add_argument("--aligned", action="store_true",
                            help="read the aligned face crops; the whole crop is the face")
        parser.add_argument("--identities", default="",
                            help="CSV with columns image,identity giving every image's "
                                 "subject (Liu et al. 2017 label SFEW identities by hand)")

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "sfew --root")
        inputs = []
        for folder_name, split in SPLITS:
            split_folder = common.child(root, folder_name)
            base = split_folder and class_root(split_folder, args.aligned)
            if base is None or not os.path.isdir(base):
                kind = "aligned faces of " if args.aligned else ""
                raise PrepError(f"sfew: no {kind}{folder_name}/ folder under {root}")
            for folder in common.sub_folders(base):
                expression = SFEW_FOLDERS.get(folder.lower())
                if expression is None:
                    continue
                for name in common.image_files(os.path.join(base, folder)):
                    path = os.path.join(base, folder, name)
                    relative = os.path.relpath(path, root)
                    face = FaceInput(image_path=path, image_id=relative, where=relative,
                                     split=split, expression=BASIC7.index(expression))
                    if args.aligned:
                        box = whole_image_box(path, args.box_extension)
                        if box is None:
                            face.error = f"cannot decode image (corrupt or truncated): {path}"
                        else:
                            face.face_box = np.array(box)
                    inputs.append(face)
        if not inputs:
            raise PrepError(f"sfew: no images in the class folders under {root}")
        options = {"aligned": args.aligned}
        fingerprint = {"listing": common.listing_fingerprint(
            root, [f.image_path for f in inputs], options)}
        identities, warnings = {}, []
        if args.identities:
            identities, warnings = assign_identities(inputs, args.identities)
            fingerprint["identities_sha256"] = sha256(args.identities)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            domains=[self.name], identities=identities, fingerprint=fingerprint,
            info={"root": root, "aligned": args.aligned, "test_split": "Val",
                  "identities": os.path.abspath(args.identities) if args.identities else None},
            warnings=warnings,
        )


def read_identity_table(path):
    """``{image key: identity string}`` from the ``--identities`` CSV; errors name the line."""
    if not os.path.isfile(path):
        raise PrepError(f"sfew: --identities file {path} not found")
    header, rows = read_csv_rows(path)
    missing = [c for c in ("image", "identity") if c not in header]
    if missing:
        raise PrepError(f"{path}: missing column(s) {', '.join(missing)} "
                        f"(expected image,identity)")
    table = {}
    for line, row in rows:
        image = (row.get("image") or "").strip().replace("\\", "/")
        identity = (row.get("identity") or "").strip()
        if not image or not identity:
            raise PrepError(f"{path} line {line}: empty image or identity")
        if table.get(image, identity) != identity:
            raise PrepError(f"{path} line {line}: {image} has two identities "
                            f"({table[image]!r} and {identity!r})")
        table[image] = identity
    return table


def assign_identities(inputs, path):
    """Set every input's ``identity`` from the ``--identities`` CSV at ``path``.

    An input is found by its path relative to the root (its ``image_id``), else by its
    file name when no other input has that name. Returns ``(identities, warnings)``:
    the subject -> id map and a warning for CSV rows naming no imported image. An
    image without a row is an error naming the first ones (the tuple sampler would
    fail on it later, far from the cause).
    """
    table = read_identity_table(path)
    names = Counter(os.path.basename(face.image_id) for face in inputs)
    keys, unlabelled = {}, []
    for face in inputs:
        name = os.path.basename(face.image_id)
        if face.image_id in table:
            keys[face.image_id] = face.image_id
        elif name in table and names[name] == 1:
            keys[face.image_id] = name
        else:
            unlabelled.append(face.image_id)
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (", ..." if len(unlabelled) > 5 else "")
        raise PrepError(f"sfew: {len(unlabelled)} of {len(inputs)} image(s) have no row in "
                        f"{path} ({shown}); give each an image,identity row (the path "
                        f"relative to --root where file names repeat)")
    identities = id_map([table[key] for key in keys.values()])
    for face in inputs:
        face.identity = identities[table[keys[face.image_id]]]
    unused = sorted(set(table) - set(keys.values()))
    warnings = [f"{path}: {len(unused)} row(s) name no imported image (e.g. {unused[0]})"
                ] if unused else []
    return identities, warnings


SOURCE = SFEWSource()
