"""The ``raf_ce`` source: RAF-CE, 14 compound emotions with AU labels (Li et al. 2023, MML).

RAF-CE is built from the intersection of RAF-ML and RAF-AU (Li et al. 2023, Sec. 3.1)
and no public file format for it was found, so this package defines one, in the style
of RAF-DB (``data_prep/raf_ce.md``)::

    EmoLabel/RAFCE_partition_label.txt   "train_0001.jpg 3 1+4+25+26"

the image name (``train_``/``test_`` prefix = split), the 1-based class in
:data:`~fermtl_tf.knowledge.vocabularies.RAFCE14` order (Li et al. Table 1), then the
active AUs joined by ``+`` (``AU`` prefix and an ``L``/``R`` side, prefix or suffix,
are accepted: ``AU12``, ``L12``, ``12R``); ``0`` / ``none`` / ``null`` means "no AU
active"; no AU field means "AUs not annotated" (mask 0).

Protocol (Li et al. 2023, Sec. 5.2): "The training set was randomly selected by
one-fourth to form the validation sets" -- ``--val-fraction 0.25`` of the training
images become split ``val`` (the meta-validation set), drawn by ``--split-seed``;
RAF has no identities, so the hold-out is by image.
"""

import re

import numpy as np

from fermtl_tf.data.sources._listfile_common import add_split_seed_argument, holdout
from fermtl_tf.data.sources._raf_common import LineError, add_image_arguments, load_raf_list
from fermtl_tf.data.sources.base import PrepError, Source
from fermtl_tf.knowledge.vocabularies import RAFCE14, au_name

LIST_FILES = ("EmoLabel/RAFCE_partition_label.txt", "RAFCE_partition_label.txt")
NO_AU = {"0", "none", "null", "-"}
_AU_TOKEN = re.compile(r"^(?:AU)?([LR]?)(\d+)([LR]?)$", re.I)


def parse_aus(field):
    """AU names of one ``+``-joined field (``None`` = no AU field, not annotated)."""
    if field is None:
        return None
    if field.lower() in NO_AU:
        return []
    names = []
    for token in field.split("+"):
        match = _AU_TOKEN.match(token.strip())
        if not match or (match.group(1) and match.group(3)):
            raise LineError(f"AU token {token!r} is not like 12, AU12, L12 or 12R")
        names.append(au_name(int(match.group(2)), (match.group(1) + match.group(3)).upper()))
    return names


def _au_sort_key(name):
    match = re.match(r"AU(\d+)([LR]?)$", name)
    return int(match.group(1)), match.group(2)


class RafCeSource(Source):
    name = "raf_ce"
    description = "RAF-CE (MML): 14 compound emotions + AUs; 1/4 of train held out as val"
    layout = """\
Expected layout under --root (format defined by fermtl-tf, see data_prep/raf_ce.md):
  EmoLabel/RAFCE_partition_label.txt   lines "train_0001.jpg 3 1+4+25+26":
      image name (train_/test_ prefix = split), class 1..14 in RAFCE14 order
      (1 happily_surprised ... 14 happily_sad, Li et al. 2023 Table 1), then the
      active AUs joined by '+' (12, AU12, L12, 12R accepted; 0/none = no AU active;
      no field = AUs not annotated)
  Image/aligned/train_0001_aligned.jpg    --images aligned (default; used whole)
  Image/original/train_0001.jpg           --images original (+ Annotation/boundingbox/)
Protocol: --val-fraction 0.25 of the train images become split 'val' (by --split-seed)."""

    def add_arguments(self, parser):
        add_image_arguments(parser)
        parser.add_argument("--val-fraction", type=float, default=0.25,
                            help="fraction of train held out as (meta-)validation (default "
                                 "0.25, Li et al. 2023 Sec. 5.2)")
        add_split_seed_argument(parser, "seed of the validation hold-out (default 0)")
        parser.add_argument("--aus", default="",
                            help="comma-separated AU names/numbers to keep, in this order "
                                 "(default: every AU in the list file, by number)")

    def load(self, args):
        if not 0.0 <= args.val_fraction < 1.0:
            raise PrepError(f"raf_ce: --val-fraction must be in [0, 1), got {args.val_fraction}")
        per_face = {}

        def read_aus(face, tokens):
            per_face[id(face)] = parse_aus("+".join(tokens) if tokens else None)

        dataset = load_raf_list(args, self.name, LIST_FILES, "rafce14", RAFCE14,
                                list(range(len(RAFCE14))), extra=read_aus)
        au_names = self._au_names(args.aus, per_face.values())
        dropped = set()
        for face in dataset.inputs:
            names = per_face.get(id(face))
            if face.error or names is None:
                continue
            dropped.update(set(names) - set(au_names))
            face.au = np.array([float(n in names) for n in au_names], np.float32)
            face.au_mask = np.ones(len(au_names), np.float32)
        dataset.au_names = au_names
        if dropped:
            dataset.info["aus_not_kept"] = sorted(dropped, key=_au_sort_key)
        self._hold_out(dataset, args)
        return dataset

    @staticmethod
    def _au_names(wanted, parsed):
        if wanted.strip():
            try:
                return [parse_aus(t.strip())[0] for t in wanted.split(",") if t.strip()]
            except LineError as error:
                raise PrepError(f"raf_ce: --aus: {error}") from None
        found = {name for names in parsed if names for name in names}
        return sorted(found, key=_au_sort_key)

    @staticmethod
    def _hold_out(dataset, args):
        train = [f.image_id for f in dataset.inputs if f.split == "train" and not f.error]
        held = holdout(train, args.val_fraction, args.split_seed)
        for face in dataset.inputs:
            if face.image_id in held:
                face.split = "val"
        dataset.seed = args.split_seed
        protocol = {"val_fraction": args.val_fraction, "split_seed": args.split_seed,
                    "aus": dataset.au_names}
        dataset.info.update(protocol)
        dataset.fingerprint.update(protocol)


SOURCE = RafCeSource()
