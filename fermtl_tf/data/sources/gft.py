"""The ``gft`` source: Sayette Group Formation Task videos with per-frame AU occurrence.

GFT ships one video per participant and FACS occurrence codes per frame; no public
loader fixed the file names, so this importer reads a documented layout
(``data_prep/gft.md``): ``AU_OCC/<video>.csv`` tables in the BP4D style (frame column,
then AU columns ``1`` or ``AU1``; 0/1, 9 = not codeable) beside ``Videos/<video>.avi``
(or extracted frames, ``--images DIR/<video>/<frame>.jpg``). FaceBehaviorNet (Kollias
et al., §5.4, Table 6) tests on GFT as an unseen database with the 10 GFT AUs, so every
frame is ``test`` unless ``--train-videos`` names the training participants.
"""

import os

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
    parse_au_list,
    read_lines,
    read_occurrence_table,
    require_root,
)
from fermtl_tf.data.sources.base import FaceInput, ImportedDataset, PrepError, Source
from fermtl_tf.knowledge.vocabularies import BASIC7

LABEL_FOLDERS = {"AU_OCC", "AUs", "AU", "labels"}
VIDEO_FOLDERS = {"Videos", "videos", "Video", "video"}


class GftSource(Source):
    name = "gft"
    description = "GFT (Sayette group formation): per-frame AU occurrence, unseen-database test"
    layout = """\
Expected layout under --root (our documented form, see data_prep/gft.md):
  AU_OCC/<video>.csv       header "frame,1,2,4,..." (or AU1,AU2,...); rows 0/1, 9 = unknown
                           (also accepted: a folder named AUs, AU or labels)
  Videos/<video>.avi|mp4   one video per participant; frame numbers count from
                           --first-frame (default 1) at the first decoded frame
  or --images DIR          already extracted frames DIR/<video>/<frame>.jpg
Every frame is split "test" (FaceBehaviorNet's unseen-database test) unless
--train-videos FILE lists training videos (one stem per line). identity = video."""

    def add_arguments(self, parser):
        parser.add_argument("--root", required=True, help="the GFT folder")
        parser.add_argument("--images", default=None, help="already extracted frames")
        parser.add_argument("--aus", default="gft10",
                            help="AU subset: gft10 (default), all or a list like 1,2,4")
        parser.add_argument("--first-frame", type=int, default=1, choices=(0, 1),
                            help="frame number of a video's first frame (default 1)")
        parser.add_argument("--train-videos", default=None,
                            help="file of training video stems, one per line")
        add_frame_source_arguments(parser, "<out>/frames")

    def load(self, args):
        root = require_root(args.root, self.name)
        labels_dir = find_dir(root, LABEL_FOLDERS)
        files = sorted(os.path.join(labels_dir, n) for n in os.listdir(labels_dir)
                       if n.lower().endswith(".csv")) if labels_dir else []
        if not files:
            raise PrepError(f"{root}: no AU_OCC/<video>.csv occurrence tables found")
        train = set()
        if args.train_videos:
            try:
                train = {line.strip() for line in read_lines(args.train_videos) if line.strip()}
            except RowError as error:
                raise PrepError(str(error)) from None
        wanted = parse_au_list(args.aus)
        videos = [os.path.splitext(os.path.basename(p))[0] for p in files]
        identities = id_map(videos)
        frames_dir = args.frames_dir or os.path.join(args.out, "frames")
        inputs, pending, numbers = [], [], list(wanted or [])
        for video, path in zip(videos, files, strict=True):
            rel = os.path.relpath(path, root)
            common = {"identity": identities[video],
                      "split": "train" if video in train else "test"}
            try:
                header, rows, errors = read_occurrence_table(path, rel)
                images = self._images(video, [r[1] for r in rows], root, frames_dir, args)
            except RowError as error:
                inputs.append(FaceInput(image_path=path, image_id=rel, where=rel,
                                        error=str(error), **common))
                continue
            numbers += [au for au in header if wanted is None and au not in numbers]
            inputs += [FaceInput(image_path=path, image_id=f"{rel}:{line}",
                                 where=f"{rel} line {line}", error=message, **common)
                       for line, message in errors]
            for line, frame, values in rows:
                image = images.get(frame)
                face = FaceInput(image_path=image or "", where=f"{rel} line {line}",
                                 image_id=os.path.relpath(image, root) if image else
                                 f"{video}/{frame}", sequence_id=video, frame_index=frame,
                                 **common)
                if image is None:
                    face.error = f"no image for frame {frame} of {video}"
                pending.append((face, values))
                inputs.append(face)
        for face, values in pending:
            face.au, face.au_intensity, face.au_mask = au_vectors(numbers, values)
        return ImportedDataset(
            source=self.name, inputs=inputs, vocabulary_name="basic7", vocabulary=BASIC7,
            au_names=[f"AU{n}" for n in numbers], identities=identities,
            domains=[self.name],
            fingerprint=fingerprint_files(files, root, {
                "aus": numbers, "first_frame": args.first_frame, "train": sorted(train),
                "images": bool(args.images), "frame_format": args.frame_format}),
            info={"root": root, "videos": len(files), "frames_dir": frames_dir,
                  "train_videos": sorted(train)},
        )

    @staticmethod
    def _images(video, frames, root, frames_dir, args):
        if args.images:
            return index_frames(os.path.join(args.images, video))
        folder = find_dir(root, VIDEO_FOLDERS)
        path = find_video(folder, [rf"{video}"]) if folder else None
        if path is None:
            raise RowError(f"no video for {video}: expected Videos/{video}.avi under {root}")
        images, _ = extract_frames(path, os.path.join(frames_dir, video), frames,
                                   args.frame_format, first_number=args.first_frame)
        return images


SOURCE = GftSource()
