"""The ``lsemsw`` source: LSEMSW, 13 subtle emotions and mental states (Hu et al., ECCV 2018).

LSEMSW is not public, so this package documents a CSV (``data_prep/lsemsw.md``): one
row per image with ``image_path`` and ``expression`` (a class name of
:data:`~fermtl_tf.knowledge.vocabularies.LSEMSW13`, any case), optional ``split``,
``group`` and ``face_x, face_y, face_w, face_h`` columns.

Protocol (Hu et al. 2018, Sec. 4): "the database is divided to training, validation and
test sets according to the ratio: 80%, 10% and 10%". Without a ``split`` column the
split is drawn by ``--split-seed``: over images, or over ``group`` values (e.g. the
source movie, to keep near-duplicate frames together) when that column is filled.
"""

import os

from fermtl_tf.data.sources._listfile_common import (
    add_split_seed_argument,
    box_from_row,
    find_file,
    parse_fractions,
    partition,
    read_csv_rows,
    require_root,
    sha256,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import LSEMSW13

SPLITS = ("train", "val", "test")


class LsemswSource(Source):
    name = "lsemsw"
    description = "LSEMSW (not public): 13 subtle emotions/mental states, 80/10/10 split"
    layout = """\
Expected layout (format defined by fermtl-tf, see data_prep/lsemsw.md):
  <root>/lsemsw.csv     header image_path,expression[,split][,group][,face_x,face_y,
                        face_w,face_h]; expression one of happy, sad, scared, angry,
                        hesitant, indifferent, surprised, anxious, arrogant, thinking,
                        helpless, suspicious, questioning (any case)
  <root>/<image_path>   images (paths relative to --root)
Split: the split column (train/val/test) when every row has one, else 80/10/10 by
--split-seed over images (or over the group column's values when it is filled)."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the LSEMSW folder")
        parser.add_argument("--csv", default="lsemsw.csv",
                            help="the CSV, relative to --root (default lsemsw.csv)")
        parser.add_argument("--split-fractions", default="0.8,0.1,0.1",
                            help="train,val,test fractions (default 0.8,0.1,0.1, Hu et al.)")
        add_split_seed_argument(parser, "seed of the 80/10/10 split (default 0)")

    def load(self, args):
        root = require_root(args.root, self.name)
        fractions = parse_fractions(args.split_fractions, self.name)
        path = find_file(root, [args.csv], self.name, "list CSV")
        header, rows = read_csv_rows(path)
        for column in ("image_path", "expression"):
            if column not in header:
                raise PrepError(f"{path}: no {column!r} column (header: {', '.join(header)})")
        if not rows:
            raise PrepError(f"{path}: no rows after the header")
        classes = {name.lower(): i for i, name in enumerate(LSEMSW13)}
        inputs = [self._face(root, path, line, row, classes) for line, row in rows]
        given = [(row.get("split") or "").strip() for _, row in rows]
        info = {"root": os.path.abspath(root), "list": os.path.basename(path)}
        if all(s in SPLITS for s in given):
            info["split_from"] = "split column"
        else:
            groups = [(row.get("group") or "").strip() for _, row in rows]
            keys = groups if all(groups) else [f.image_id for f in inputs]
            table = partition(keys, fractions, SPLITS, args.split_seed)
            for face, key in zip(inputs, keys, strict=True):
                face.split = table[key]
            info.update(split_from="group column" if all(groups) else "images",
                        split_fractions=fractions, split_seed=args.split_seed)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="lsemsw13", vocabulary=LSEMSW13,
            fingerprint={"csv_sha256": sha256(path), "fractions": fractions,
                         "split_seed": args.split_seed},
            seed=args.split_seed, info=info,
        )

    @staticmethod
    def _face(root, path, line, row, classes):
        image = (row.get("image_path") or "").strip()
        face = FaceInput(image_path=os.path.join(root, image), image_id=image,
                         where=f"{os.path.basename(path)} line {line} ({image})")
        try:
            if "" in row or None in row:
                raise ValueError("more fields than header columns")
            if not image:
                raise ValueError("empty image_path")
            label = (row.get("expression") or "").strip()
            if label.lower() not in classes:
                raise ValueError(f"expression {label!r} is not an LSEMSW class "
                                 f"({', '.join(LSEMSW13)})")
            face.expression = classes[label.lower()]
            face.split = (row.get("split") or "").strip()
            face.face_box = box_from_row(row)
        except ValueError as error:
            face.error = str(error)
        return face


SOURCE = LsemswSource()
