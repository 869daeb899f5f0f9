"""The ``sfew`` source: Static Facial Expressions in the Wild 2.0 (Dhall et al. 2015).

Liu et al. (2017), Sec. 4.1: the 7 classes, training on Train and reporting on Val
("validation is the test set": Val images get ``split = "test"``; the EmotiW Test
images carry no labels and are not imported). Faces are found by MTCNN in the movie
frames; with ``--aligned`` the distribution's aligned face crops are read instead and
the whole crop is the face (its box is shrunk so that ``--box-extension`` brings it
back to the full image, so no black border is added).
"""

import os

import cv2
import numpy as np

from fermtl_tf.data.sources import _lab_common as common
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
Faces: MTCNN on the frames (default --crop-from detect); with --aligned the whole crop."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding Train/ and Val/")
        parser.add_argument("--aligned", action="store_true",
                            help="read the aligned face crops; the whole crop is the face")

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
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            domains=[self.name],
            fingerprint={"listing": common.listing_fingerprint(
                root, [f.image_path for f in inputs], options)},
            info={"root": root, "aligned": args.aligned, "test_split": "Val"},
        )


SOURCE = SFEWSource()
