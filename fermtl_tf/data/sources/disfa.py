"""The ``disfa`` source: DISFA videos with per-frame AU intensities (0-5).

Labels: ``ActionUnit_Labels/SN001/SN001_au1.txt``, one ``frame,intensity`` line per
video frame (frames counted from 1). Occurrence is intensity >= 2 (Kollias et al.,
FaceBehaviorNet §5.1, the usual DISFA convention). Frames come from
``Videos_LeftCamera/LeftVideoSN001_comp.avi`` through OpenCV (label frame k = the
k-th decoded frame) and are written once to ``--frames-dir``; already extracted frames
can be given instead with ``--images``. Protocol: 3 subject-independent folds.
"""

import os
import re

from fermtl_tf.data.protocols import identity_folds
from fermtl_tf.data.sources._au_video_common import (
    RowError,
    add_frame_source_arguments,
    au_vectors,
    extract_frames,
    find_dir,
    find_video,
    fingerprint_files,
    id_map,
    index_frames,
    number,
    parse_au_list,
    read_lines,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

LABEL_FILE = re.compile(r"^(SN\d+)_au(\d+)\.txt$", re.IGNORECASE)
NUM_FOLDS = 3


def read_intensity_file(path, rel):
    """``{frame: intensity}`` and ``[(line, message)]`` of one ``frame,intensity`` file."""
    labels, errors = {}, []
    for line_number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            cells = [c.strip() for c in line.split(",")]
            if len(cells) != 2:
                raise RowError(f"expected 'frame,intensity', got {line.strip()!r}")
            frame = number(cells[0], "frame", 0)
            labels[int(frame)] = number(cells[1], "intensity", 0, 5)
        except RowError as error:
            errors.append((line_number, str(error)))
    return labels, errors


class DisfaSource(Source):
    name = "disfa"
    description = "DISFA: spontaneous-AU videos, 12 AU intensities (occurrence >= 2), 3 folds"
    layout = """\
Expected layout under --root:
  ActionUnit_Labels/SN001/SN001_au1.txt          lines "frame,intensity" (frames from 1)
  Videos_LeftCamera/LeftVideoSN001_comp.avi      (or --camera right: Videos_RightCamera/
                                                  RightVideoSN001_comp.avi)
or already extracted frames with --images DIR:   DIR/SN001/<frame>.jpg|png (any padding)
Frames are extracted with OpenCV into --frames-dir (default <out>/frames), label frame k
being the k-th decoded frame. Occurrence = intensity >= --threshold (default 2).
Folds: 3 subject-independent folds (fermtl-prep --folds K replaces them)."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the DISFA folder")
        parser.add_argument("--camera", default="left", choices=("left", "right"))
        parser.add_argument("--images", default=None,
                            help="already extracted frames, <DIR>/SN001/<frame>.jpg")
        parser.add_argument("--aus", default="disfa12",
                            help="AU subset: disfa12 (default, FaceBehaviorNet), disfa8, "
                                 "all or a list like 1,2,4")
        parser.add_argument("--threshold", type=float, default=2.0,
                            help="occurrence = intensity >= threshold (default 2)")
        parser.add_argument("--every", type=int, default=1,
                            help="import one frame in N per subject (default 1: all)")
        add_frame_source_arguments(parser, "<out>/frames")

    def load(self, args):
        root = require_root(args.root, self.name)
        if args.every < 1:
            raise PrepError(f"--every must be >= 1, got {args.every}")
        labels_dir = find_dir(root, {"ActionUnit_Labels"})
        if labels_dir is None:
            raise PrepError(f"{root}: no ActionUnit_Labels/ folder found")
        files = self._label_files(labels_dir)
        if not files:
            raise PrepError(f"{labels_dir}: no SN<id>/SN<id>_au<n>.txt label files")
        wanted = parse_au_list(args.aus)
        numbers = sorted({au for per in files.values() for au in per}) if wanted is None \
            else list(wanted)
        identities = id_map(files)
        folds = identity_folds(list(identities.values()), NUM_FOLDS)
        frames_dir = args.frames_dir or os.path.join(args.out, "frames")
        inputs = []
        for subject in sorted(files):
            inputs += self._subject(subject, files[subject], numbers, root, frames_dir, args,
                                    identities[subject], folds[identities[subject]])
        paths = [p for per in files.values() for p in per.values()]
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            au_names=[f"AU{n}" for n in numbers], identities=identities,
            domains=[self.name],
            fingerprint=fingerprint_files(paths, root, {
                "camera": args.camera, "aus": numbers, "threshold": args.threshold,
                "every": args.every, "images": bool(args.images),
                "frame_format": args.frame_format}),
            info={"root": root, "subjects": len(files), "frames_dir": frames_dir,
                  "num_folds": NUM_FOLDS, "occurrence_threshold": args.threshold},
        )

    @staticmethod
    def _label_files(labels_dir):
        files = {}
        for folder, _, names in os.walk(labels_dir):
            for name in names:
                match = LABEL_FILE.match(name)
                if match:
                    subject = match.group(1).upper()
                    files.setdefault(subject, {})[int(match.group(2))] = os.path.join(folder, name)
        return files

    def _subject(self, subject, files, numbers, root, frames_dir, args, identity, fold):
        """Inputs of one subject: skips for bad label lines/files, then one per frame."""
        skips, intensities = [], {}

        def skip(image_id, where, error):
            skips.append(FaceInput(image_path=image_id, image_id=image_id, where=where,
                                   error=error, identity=identity, fold=fold))

        for au in numbers:
            path = files.get(au)
            rel = os.path.relpath(path, root) if path else f"{subject}_au{au}.txt"
            if path is None:
                skip(rel, rel, f"label file not found for {subject} AU{au}; AU{au} masked")
                continue
            try:
                intensities[au], errors = read_intensity_file(path, rel)
            except RowError as error:
                skip(rel, rel, str(error))
                continue
            for line, message in errors:
                skip(f"{rel}:{line}", f"{rel} line {line}", message)
        frames = sorted({f for per in intensities.values() for f in per})[::args.every]
        try:
            images = self._frame_images(subject, frames, root, frames_dir, args)
        except RowError as error:
            return skips + [FaceInput(image_path=subject, image_id=subject, where=subject,
                                      error=str(error), identity=identity, fold=fold)]
        faces = []
        for frame in frames:
            occurrence = {au: float(per[frame] >= args.threshold)
                          for au, per in intensities.items() if frame in per}
            strength = {au: per[frame] for au, per in intensities.items() if frame in per}
            path = images.get(frame)
            face = FaceInput(image_path=path or "", where=f"{subject} frame {frame}",
                             image_id=os.path.relpath(path, root) if path else
                             f"{subject}/{frame}", identity=identity, sequence_id=subject,
                             frame_index=frame, fold=fold)
            face.au, face.au_intensity, face.au_mask = au_vectors(numbers, occurrence, strength)
            if path is None:
                face.error = (f"no image for labelled frame {frame} of {subject} (past the "
                              "end of the video, or missing from --images)")
            faces.append(face)
        return skips + faces

    @staticmethod
    def _frame_images(subject, frames, root, frames_dir, args):
        if args.images:
            return index_frames(os.path.join(args.images, subject))
        side = args.camera.capitalize()
        folder = find_dir(root, {f"Videos_{side}Camera", f"Video_{side}Camera"})
        video = find_video(folder, [rf"{side}Video{subject}(_comp)?"]) if folder else None
        if video is None:
            raise RowError(f"no video for {subject}: expected Videos_{side}Camera/"
                           f"{side}Video{subject}_comp.avi under {root}")
        paths, _ = extract_frames(video, os.path.join(frames_dir, subject), frames,
                                  args.frame_format, first_number=1)
        return paths


SOURCE = DisfaSource()
