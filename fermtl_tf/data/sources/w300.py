"""The ``300w`` source: 300 Faces In-the-Wild (Sagonas et al. 2013), optionally + Menpo.

Hu et al. (2018), Sec. 4.1: train on the 300-W training images (AFW + HELEN and LFPW
trainsets, 3,148) and the Menpo 68-point (semi-frontal) training images; test on the
common subset (HELEN + LFPW testsets, 554), the challenging subset (iBUG, 135) and the
full set (689); MTCNN detection with the box extended by 0.2 (the orchestrator's
default ``--crop-from detect --box-extension 0.2``). The record's ``split`` is
``train``, ``common``, ``challenging`` or ``private`` (the 300-W competition set,
``300W/{01_Indoor,02_Outdoor}``); the full set is ``common`` + ``challenging``.
"""

import os

from fermtl_tf.data.sources import _lab_common as common
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.data.sources.manifest_csv import RowError, add_pts_offset_argument, read_pts
from fermtl_tf.knowledge.landmarks import NUM_LANDMARKS
from fermtl_tf.knowledge.vocabularies import BASIC7

#: (folder path under --root, split) of the 300-W parts.
PARTS = (
    (("afw",), "train"),
    (("helen", "trainset"), "train"),
    (("lfpw", "trainset"), "train"),
    (("helen", "testset"), "common"),
    (("lfpw", "testset"), "common"),
    (("ibug",), "challenging"),
    (("300W", "01_Indoor"), "private"),
    (("300W", "02_Outdoor"), "private"),
)
SUBSETS = {
    "all": ("train", "common", "challenging", "private"),
    "train": ("train",),
    "common": ("common",),
    "challenging": ("challenging",),
    "full": ("common", "challenging"),
    "private": ("private",),
}


def _part_folder(root, names):
    folder = root
    for name in names:
        folder = common.child(folder, name) if folder else None
    return folder if folder and os.path.isdir(folder) else None


def annotated_images(folder, shown_from, prefix=""):
    """``([(image path, pts path or None)], [warning])`` for ``folder`` (recursive).

    Images are the files OpenCV reads (:data:`_lab_common.IMAGE_EXTENSIONS`, ``.ppm``
    included); every other visible file (a ``.pts`` without an image, a ``.txt``) is
    named in a warning rather than passed over silently. Paths in warnings are relative
    to ``shown_from``, after ``prefix``.
    """
    pairs, warnings = [], []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        images = common.image_files(current)
        stems = {os.path.splitext(name)[0] for name in images}
        for name in images:
            pts = os.path.join(current, os.path.splitext(name)[0] + ".pts")
            pairs.append((os.path.join(current, name), pts if os.path.isfile(pts) else None))
        for name in sorted(set(files) - set(images)):
            stem, extension = os.path.splitext(name)
            if name.startswith(".") or (extension.lower() == ".pts" and stem in stems):
                continue
            shown = prefix + os.path.relpath(os.path.join(current, name), shown_from)
            if not os.path.isfile(os.path.join(current, name)):
                what = "not a regular file"
            elif extension.lower() == ".pts":
                what = "a .pts file without an image beside it"
            else:
                what = "not an image OpenCV reads"
            warnings.append(f"300w: ignored {shown} ({what})")
    return pairs, warnings


def landmark_input(image, pts, root, split, domain, offset, prefix=""):
    """A FaceInput with the 68 points of ``pts``; an unusable file is the input's error."""
    relative = prefix + os.path.relpath(image, root)
    face = FaceInput(image_path=image, image_id=relative, where=relative, split=split,
                     domain=domain)
    try:
        if pts is None:
            raise RowError(f"no .pts landmark file beside {image}")
        points = read_pts(pts, offset)
        if len(points) != NUM_LANDMARKS:
            name = prefix + os.path.relpath(pts, root)
            raise RowError(f"{name} has {len(points)} points, expected "
                           f"{NUM_LANDMARKS} (profile faces of Menpo have 39)")
        face.landmarks = points
    except RowError as error:
        face.error = str(error)
    return face


class W300Source(Source):
    name = "300w"
    description = "300-W (+ Menpo 68-pt) landmarks: train / common / challenging / full"
    layout = """\
Expected layout under --root (the 300-W download, images beside their .pts files):
  afw/*.jpg + *.pts                     train
  helen/trainset/*.jpg + *.pts          train        helen/testset/   common
  lfpw/trainset/*.png + *.pts           train        lfpw/testset/    common
  ibug/*.jpg + *.pts                    challenging
  300W/01_Indoor/, 300W/02_Outdoor/     private (the 300-W competition test set)
.pts: "version: 1", "n_points:  68", "{", 68 lines "x y", "}" (pixel centres from 1:
--pts-offset 0.5 moves them to this package's convention, centre of pixel i at i + 0.5).
Images: any format OpenCV reads (.jpg, .png, .ppm, ...); other files are named in a warning.
Folder names are matched ignoring case; missing parts are skipped with a warning.
--menpo DIR adds the Menpo 2D training images (any folder tree of images + .pts);
only 68-point (semi-frontal) files are used, 39-point profile files are listed as skipped.
Crop (Hu et al. 2018): MTCNN, box extended by 0.2 (the default --crop-from detect).
Splits: train, common (554), challenging (135), private; full = common + challenging."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="folder holding afw/, helen/, ...")
        parser.add_argument("--subset", default="all", choices=sorted(SUBSETS),
                            help="which parts to import (default all)")
        parser.add_argument("--menpo", help="folder of Menpo 68-point training images + .pts")
        add_pts_offset_argument(parser)

    def load(self, args):
        root = common.require_folder(os.path.abspath(args.root), "300w --root")
        wanted = SUBSETS[args.subset]
        inputs, warnings, counts = [], [], {}
        for names, split in PARTS:
            if split not in wanted:
                continue
            folder = _part_folder(root, names)
            if folder is None and split != "private":
                warnings.append(f"300w: no {'/'.join(names)}/ folder under {root}")
            if folder is None:
                continue
            pairs, ignored = annotated_images(folder, root)
            warnings.extend(ignored)
            counts["/".join(names)] = len(pairs)
            inputs.extend(landmark_input(i, p, root, split, 0, args.pts_offset)
                          for i, p in pairs)
        domains = [self.name]
        if args.menpo and "train" in wanted:
            menpo = common.require_folder(os.path.abspath(args.menpo), "300w --menpo")
            pairs, ignored = annotated_images(menpo, menpo, "menpo/")
            warnings.extend(ignored)
            counts["menpo"] = len(pairs)
            inputs.extend(landmark_input(i, p, menpo, "train", 1, args.pts_offset, "menpo/")
                          for i, p in pairs)
            domains.append("menpo")
        if not inputs:
            raise PrepError(f"300w: no images of subset {args.subset!r} under {root}")
        paths = [f.image_path for f in inputs]
        options = {"subset": args.subset, "menpo": bool(args.menpo),
                   "pts_offset": args.pts_offset}
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            domains=domains,
            fingerprint={"listing": common.listing_fingerprint(root, paths, options)},
            info={"root": root, "subset": args.subset, "images_per_part": counts,
                  "menpo": os.path.abspath(args.menpo) if args.menpo else None},
            warnings=warnings,
        )


SOURCE = W300Source()
