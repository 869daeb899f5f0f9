"""The ``bp4d`` source: BP4D-Spontaneous frames with per-frame AU occurrence.

Labels: ``AUCoding/AU_OCC/F001_T1.csv`` (header: frame column, then AU numbers; rows
``frame,0|1|9,...``, 9 = not codeable -> masked); frames ``F001/T1/<frame>.jpg``.
Protocol: 3 subject-independent folds; AU subset of FERA 2015 (11 AUs, Kollias et al.,
FaceBehaviorNet §5.1) by default. ``bp4d_plus`` (BP4D+, FERA 2017 subset) reuses this
importer with other defaults.
"""

import os
import re

from fermtl_tf.data.protocols import identity_folds
from fermtl_tf.data.sources._au_video_common import (
    RowError,
    au_vectors,
    find_dir,
    fingerprint_files,
    id_map,
    index_frames,
    parse_au_list,
    read_occurrence_table,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

LABEL_FILE = re.compile(r"^([FM]\d+)_(T\d+)\.csv$", re.IGNORECASE)
IMAGE_FOLDERS = ("", "2DFaceImages", "Sequences", "2D", "images", "2D+3D")
NUM_FOLDS = 3


def find_image_root(root, subject, task):
    """The folder holding ``<subject>/<task>/`` frame folders (known names, then search)."""
    for name in IMAGE_FOLDERS:
        if os.path.isdir(os.path.join(root, name, subject, task)):
            return os.path.join(root, name)
    for folder, subfolders, _ in os.walk(root):
        if subject in subfolders and os.path.isdir(os.path.join(folder, subject, task)):
            return folder
        if os.path.relpath(folder, root).count(os.sep) >= 3:
            subfolders[:] = []
    return None


class Bp4dSource(Source):
    name = "bp4d"
    description = "BP4D-Spontaneous: per-frame AU occurrence (FERA 2015 AUs), 3 subject folds"
    default_aus = "fera2015"
    layout = """\
Expected layout under --root:
  AUCoding/AU_OCC/F001_T1.csv     header "frame,1,2,4,...": the frame column, then AU
                                  numbers; rows of 0/1 and 9 = not codeable (masked)
  F001/T1/<frame>.jpg             frame images, any zero padding (also accepted under
                                  2DFaceImages/, Sequences/, 2D/ or --images DIR)
AU subset --aus (default {aus}); 3 subject-independent folds (fermtl-prep --folds K
replaces them). No landmarks or boxes: faces are found with MTCNN (--crop-from detect)."""

    def __init__(self):
        self.layout = self.layout.format(aus=self.default_aus)

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help=f"the {self.name} folder")
        parser.add_argument("--images", default=None,
                            help="folder of <subject>/<task>/<frame>.jpg (default: found "
                                 "under --root)")
        parser.add_argument("--aus", default=self.default_aus,
                            help=f"AU subset: fera2015, fera2017, bp4d12, all or a list like "
                                 f"1,2,4 (default {self.default_aus})")

    def load(self, args):
        root = require_root(args.root, self.name)
        labels_dir = find_dir(root, {"AU_OCC"})
        if labels_dir is None:
            raise PrepError(f"{root}: no AU_OCC/ folder of <subject>_<task>.csv files found")
        files = sorted((m.group(1).upper(), m.group(2).upper(), os.path.join(labels_dir, n))
                       for n in os.listdir(labels_dir) if (m := LABEL_FILE.match(n)))
        if not files:
            raise PrepError(f"{labels_dir}: no <subject>_<task>.csv files (e.g. F001_T1.csv)")
        wanted = parse_au_list(args.aus)
        identities = id_map(subject for subject, _, _ in files)
        folds = identity_folds(list(identities.values()), NUM_FOLDS)
        inputs, pending, numbers, image_root = [], [], list(wanted or []), args.images
        for subject, task, path in files:
            rel = os.path.relpath(path, root)
            common = {"identity": identities[subject], "fold": folds[identities[subject]]}
            try:
                header, rows, errors = read_occurrence_table(path, rel)
            except RowError as error:
                inputs.append(FaceInput(image_path=path, image_id=rel, where=rel,
                                        error=str(error), **common))
                continue
            if wanted is None:
                numbers += [au for au in header if au not in numbers]
            inputs += [FaceInput(image_path=path, image_id=f"{rel}:{line}",
                                 where=f"{rel} line {line}", error=message, **common)
                       for line, message in errors]
            image_root = image_root or find_image_root(root, subject, task)
            frames = index_frames(os.path.join(image_root, subject, task)) if image_root else {}
            for line, frame, values in rows:
                face = FaceInput(image_path=frames.get(frame, ""),
                                 image_id=f"{subject}/{task}/{frame}",
                                 where=f"{rel} line {line}", sequence_id=f"{subject}_{task}",
                                 frame_index=frame, **common)
                if frame in frames:
                    face.image_id = os.path.relpath(frames[frame], image_root)
                else:
                    face.error = f"frame image missing: {subject}/{task}/{frame}.jpg"
                pending.append((face, values))
                inputs.append(face)
        if not numbers:
            raise PrepError(f"{labels_dir}: the label files name no AU columns")
        for face, values in pending:  # the AU list is complete only now (--aus all)
            face.au, face.au_intensity, face.au_mask = au_vectors(numbers, values)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            au_names=[f"AU{n}" for n in numbers], identities=identities,
            domains=[self.name],
            fingerprint=fingerprint_files([p for _, _, p in files], root, {"aus": numbers}),
            info={"root": root, "label_files": len(files), "images": image_root,
                  "num_folds": NUM_FOLDS, "aus": args.aus},
        )


SOURCE = Bp4dSource()
