"""The RAF family's list-file layout, shared by ``raf_db``, ``raf_db_compound`` and ``raf_ce``.

RAF-DB (Li, Deng & Du 2017) ships one list file, ``EmoLabel/list_patition_label.txt``
(the misspelling is the distributed name; ``list_partition_label.txt`` is accepted
too), with lines ``<image name> <1-based class>``. The official split is the file-name
prefix (``train_`` / ``test_``). Images are ``Image/aligned/<stem>_aligned.jpg``
(100x100 aligned crops) or ``Image/original/<name>`` with the face box in
``Annotation/boundingbox/<stem>_boundingbox.txt`` ("x0 y0 x1 y1").
"""

import os

import numpy as np

from fermtl_tf.data.sources._listfile_common import (
    find_file,
    read_lines,
    require_root,
    sha256,
    whole_image_box,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError

LIST_FILES = ("EmoLabel/list_patition_label.txt", "EmoLabel/list_partition_label.txt",
              "list_patition_label.txt", "list_partition_label.txt")
ALIGNED_FOLDERS = ("Image/aligned", "aligned")
ORIGINAL_FOLDERS = ("Image/original", "original")
BOX_FOLDERS = ("Annotation/boundingbox", "boundingbox")
SPLIT_PREFIXES = {"train_": "train", "test_": "test"}


class LineError(ValueError):
    """A bad list line or missing per-image file; becomes the input's skip reason."""


def add_image_arguments(parser):
    parser.add_argument("--root", required=True, help="the dataset folder (see layout above)")
    parser.add_argument("--images", default="aligned", choices=("aligned", "original"),
                        help="aligned 100x100 crops (default, used whole) or original images "
                             "(cropped with the distributed bounding box, else MTCNN)")


def split_of(name):
    """``train`` / ``test`` from the official file-name prefix."""
    for prefix, split in SPLIT_PREFIXES.items():
        if name.startswith(prefix):
            return split
    raise LineError(f"image name {name!r} has neither the train_ nor the test_ prefix")


def _first_file(root, folders, names):
    for folder in folders:
        for name in names:
            path = os.path.join(root, folder, name)
            if os.path.isfile(path):
                return path
    return os.path.join(root, folders[0], names[0])


def image_path(root, name, images):
    """Path of the image named in the list (the first existing accepted form)."""
    stem = os.path.splitext(name)[0]
    if images == "aligned":
        return _first_file(root, ALIGNED_FOLDERS, (f"{stem}_aligned.jpg", name))
    return _first_file(root, ORIGINAL_FOLDERS, (name,))


def read_box(root, name):
    """The distributed face box (x0, y0, x1, y1) of an original image, or ``None``.

    The file holds four numbers "x0 y0 x1 y1"; a file whose second pair is not larger
    than the first is read as "x y width height" (both forms are seen in copies).
    """
    stem = os.path.splitext(name)[0]
    for folder in BOX_FOLDERS:
        path = os.path.join(root, folder, f"{stem}_boundingbox.txt")
        if os.path.isfile(path):
            break
    else:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            values = [float(v) for v in handle.read().split()]
    except (OSError, ValueError):
        raise LineError(f"bounding-box file {path} is not four numbers") from None
    if len(values) != 4:
        raise LineError(f"bounding-box file {path} holds {len(values)} numbers, expected 4")
    x0, y0, a, b = values
    if a <= x0 or b <= y0:
        a, b = x0 + a, y0 + b
    if a <= x0 or b <= y0:
        raise LineError(f"bounding-box file {path} has an empty box {values}")
    return np.array([x0, y0, a, b])


def parse_label(token, num_classes):
    """The 0-based native class of a 1-based label token."""
    try:
        value = float(token)
    except ValueError:
        raise LineError(f"label {token!r} is not a number") from None
    if value != int(value) or not 1 <= value <= num_classes:
        raise LineError(f"label {token!r} is not an integer in 1..{num_classes}")
    return int(value) - 1


def load_raf_list(args, source, list_files, vocabulary_name, vocabulary, to_vocab,
                  extra=None):
    """Parse a RAF-style list into an :class:`ImportedDataset`.

    ``to_vocab[k]`` is the vocabulary index of native class ``k + 1``. ``extra(face,
    tokens)`` may read the tokens after the label (RAF-CE's AUs) and raise LineError.
    """
    root = require_root(args.root, source)
    list_path = find_file(root, list_files, source, "list file")
    lines = read_lines(list_path)
    if not lines:
        raise PrepError(f"{list_path}: the list file is empty")
    list_name = os.path.relpath(list_path, root)
    inputs = []
    for number, text in lines:
        tokens = text.split()
        name = tokens[0]
        face = FaceInput(image_path=image_path(root, name, args.images), image_id=name,
                         where=f"{list_name} line {number} ({name})")
        try:
            if len(tokens) < 2:
                raise LineError(f"line {number} has no label: {text!r}")
            face.split = split_of(name)
            face.expression = to_vocab[parse_label(tokens[1], len(to_vocab))]
            if extra is not None:
                extra(face, tokens[2:])
            elif len(tokens) > 2:
                raise LineError(f"line {number} has {len(tokens)} fields, expected 2")
            if args.images == "aligned":
                face.face_box = whole_image_box(face.image_path, args.box_extension)
            else:
                face.face_box = read_box(root, name)
        except LineError as error:
            face.error = str(error)
        inputs.append(face)
    return ImportedDataset(
        source=source, inputs=inputs, vocabulary_name=vocabulary_name,
        vocabulary=tuple(vocabulary),
        fingerprint={"list_sha256": sha256(list_path), "images": args.images},
        info={"root": os.path.abspath(root), "list_file": list_name, "images": args.images},
    )
