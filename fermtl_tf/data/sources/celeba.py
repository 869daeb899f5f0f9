"""The ``celeba`` source: CelebA, 40 binary attributes and 10,177 identities (Liu et al. 2015).

Attributes (±1 in ``list_attr_celeba.txt``) become 0/1 with their names lower-cased
(``5_o_clock_shadow`` ... ``young``); identities (``identity_CelebA.txt``, 1..10177)
become 0..n-1 in numeric order (mapping in the manifest). Splits:

* ``--split official`` (default): ``list_eval_partition.txt``, 0 train / 1 val / 2 test;
  these are subject-independent.
* ``--split subject-dependent``: FaceBehaviorNet's face-recognition case (Kollias et al.,
  Sec. 4.1: "we generated a new split into three subject dependent sets; each set
  contained images from all 10,177 identities"). The paper gives no proportions; we
  use ``--split-fractions 0.8,0.1,0.1`` (the official split's sizes), per identity:
  ``max(1, round(f * n))`` images to val and to test (drawn by ``--split-seed`` and the
  identity), the rest to train. An identity with fewer than 3 images cannot be in every
  split: its images go to train, then test (counted in ``source_info``).

Faces: FaceBehaviorNet used the aligned images (Sec. 4.3), so ``img_align_celeba`` images
are used whole (square-padded); ``--images wild`` uses ``img_celeba`` with the boxes of
``list_bbox_celeba.txt``.
"""

import os

import numpy as np

from fermtl_tf.data.sources._listfile_common import (
    add_split_seed_argument,
    find_file,
    find_folder,
    parse_fractions,
    read_lines,
    require_root,
    sha256,
    whole_image_box,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

ANNOTATION_FOLDERS = ("", "Anno", "Eval")
IMAGE_FOLDERS = {
    "aligned": ("img_align_celeba/img_align_celeba", "img_align_celeba",
                "Img/img_align_celeba"),
    "wild": ("img_celeba/img_celeba", "img_celeba", "Img/img_celeba"),
}
PARTITIONS = {"0": "train", "1": "val", "2": "test"}


class LineError(ValueError):
    """A bad annotation line; becomes the image's skip reason."""


def _annotation(root, name, source, required=True):
    candidates = [os.path.join(folder, name) for folder in ANNOTATION_FOLDERS]
    try:
        return find_file(root, candidates, source, name)
    except PrepError:
        if required:
            raise
        return None


def _table(path):
    """``{image name: (line number, [fields])}`` of a whitespace-separated list file."""
    return {fields[0]: (n, fields[1:]) for n, fields in
            ((n, text.split()) for n, text in read_lines(path))}


def read_attributes(path):
    """(names, {image: (line, fields)}) of ``list_attr_celeba.txt`` (count, names, rows)."""
    lines = read_lines(path)
    if len(lines) < 3 or not lines[0][1].split()[0].isdigit():
        raise PrepError(f"{path}: expected an image count, a line of attribute names, "
                        "then one row per image")
    names = [n.lower() for n in lines[1][1].split()]
    rows = {fields[0]: (n, fields[1:]) for n, fields in
            ((n, text.split()) for n, text in lines[2:])}
    return names, rows


def attribute_vector(fields, count):
    """0/1 vector of one row's ±1 (or 0/1) values."""
    if len(fields) != count:
        raise LineError(f"{len(fields)} attribute values, expected {count}")
    if any(v not in ("1", "-1", "0") for v in fields):
        raise LineError(f"attribute values must be 1 or -1, got {' '.join(fields)}")
    return np.array([float(v == "1") for v in fields], np.float32)


def subject_dependent_split(images_by_identity, fractions, seed):
    """``({image: split}, identities with < 3 images)``: every identity in every split."""
    assignment, small = {}, 0
    for identity, images in sorted(images_by_identity.items()):
        images = sorted(images)
        n = len(images)
        order = np.random.default_rng([seed, identity]).permutation(n)
        if n < 3:
            small += 1
            names = ["train", "test"][:n]
        else:
            n_val = min(max(1, int(round(fractions[1] * n))), n - 2)
            n_test = min(max(1, int(round(fractions[2] * n))), n - 1 - n_val)
            names = ["val"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)
        for position, split in zip(order, names, strict=False):
            assignment[images[position]] = split
    return assignment, small


class CelebASource(Source):
    name = "celeba"
    description = "CelebA: 40 attributes + identities; official or subject-dependent split"
    layout = """\
Expected layout under --root (as downloaded; annotation files may also sit in Anno/, Eval/):
  list_attr_celeba.txt      line 1 the image count, line 2 the 40 attribute names,
                            then "000001.jpg -1  1  1 -1 ..." (±1)
  identity_CelebA.txt       "000001.jpg 2880"
  list_eval_partition.txt   "000001.jpg 0" (0 train, 1 val, 2 test)
  img_align_celeba/000001.jpg       --images aligned (default; used whole)
  img_celeba/000001.jpg + list_bbox_celeba.txt ("image_id x_1 y_1 width height")
                                    --images wild
Also accepted: Img/img_align_celeba/, img_align_celeba/img_align_celeba/ (zip extraction).
--split subject-dependent: FaceBehaviorNet's split with every identity in every set."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the CelebA folder")
        parser.add_argument("--images", default="aligned", choices=("aligned", "wild"))
        parser.add_argument("--split", default="official",
                            choices=("official", "subject-dependent"),
                            help="official partition (default) or FaceBehaviorNet's "
                                 "subject-dependent split")
        parser.add_argument("--split-fractions", default="0.8,0.1,0.1",
                            help="train,val,test fractions of the subject-dependent split")
        add_split_seed_argument(parser, "seed of the subject-dependent split (default 0)")

    def load(self, args):
        root = require_root(args.root, self.name)
        fractions = parse_fractions(args.split_fractions, self.name)
        folder = find_folder(root, IMAGE_FOLDERS[args.images])
        if folder is None:
            raise PrepError(f"{self.name}: no image folder under {root} (looked for "
                            f"{', '.join(IMAGE_FOLDERS[args.images])})")
        attr_path = _annotation(root, "list_attr_celeba.txt", self.name)
        names, attributes = read_attributes(attr_path)
        ident_path = _annotation(root, "identity_CelebA.txt", self.name,
                                 required=args.split == "subject-dependent")
        part_path = _annotation(root, "list_eval_partition.txt", self.name,
                                required=args.split == "official")
        bbox_path = _annotation(root, "list_bbox_celeba.txt", self.name, required=False)
        identities = _table(ident_path) if ident_path else {}
        partition = _table(part_path) if part_path else {}
        boxes = _table(bbox_path) if bbox_path and args.images == "wild" else {}
        id_map = self._id_map(identities)
        inputs = [self._face(image, line, fields, folder, names, identities, id_map,
                             partition, boxes, args)
                  for image, (line, fields) in attributes.items()]
        info = {"root": os.path.abspath(root), "images": args.images, "split": args.split}
        if args.split == "subject-dependent":
            info.update(self._subject_dependent(inputs, fractions, args.split_seed))
        files = [p for p in (attr_path, ident_path, part_path, bbox_path) if p]
        fingerprint = {os.path.basename(p): sha256(p) for p in files}
        fingerprint.update(images=args.images, split=args.split, fractions=fractions,
                           split_seed=args.split_seed)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7",
            vocabulary=BASIC7, attribute_names=names, identities=id_map,
            fingerprint=fingerprint, seed=args.split_seed, info=info,
        )

    @staticmethod
    def _id_map(identities):
        values = {fields[0] for _, fields in identities.values() if fields}
        numeric = sorted((v for v in values if v.isdigit()), key=int)
        return {v: i for i, v in enumerate(numeric)}

    @staticmethod
    def _face(image, line, fields, folder, names, identities, id_map, partition, boxes, args):
        face = FaceInput(image_path=os.path.join(folder, image), image_id=image,
                         where=f"list_attr_celeba.txt line {line} ({image})")
        try:
            face.attributes = attribute_vector(fields, len(names))
            face.attributes_mask = np.ones(len(names), np.float32)
            ident = identities.get(image, (0, []))[1]
            face.identity = id_map.get(ident[0], -1) if ident else -1
            if args.split == "official":
                part = partition.get(image, (0, []))[1]
                if not part or part[0] not in PARTITIONS:
                    raise LineError("no 0/1/2 partition in list_eval_partition.txt")
                face.split = PARTITIONS[part[0]]
            elif face.identity < 0:
                raise LineError("no identity in identity_CelebA.txt (needed by the "
                                "subject-dependent split)")
            if args.images == "aligned":
                face.face_box = whole_image_box(face.image_path, args.box_extension)
            elif image in boxes:
                x, y, w, h = (float(v) for v in boxes[image][1][:4])
                face.face_box = np.array([x, y, x + w, y + h])
        except (LineError, ValueError) as error:
            face.error = str(error)
        return face

    @staticmethod
    def _subject_dependent(inputs, fractions, seed):
        by_identity = {}
        for face in inputs:
            if not face.error:
                by_identity.setdefault(face.identity, []).append(face.image_id)
        assignment, small = subject_dependent_split(by_identity, fractions, seed)
        for face in inputs:
            face.split = assignment.get(face.image_id, "")
        return {"split_fractions": fractions, "split_seed": seed,
                "identities_with_fewer_than_3_images": small}


SOURCE = CelebASource()
